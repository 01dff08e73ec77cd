"""Who owns which field: ``metadata.managedFields`` and server-side apply, as kube-apiserver keeps them.

An object's fields are a set of paths, each segment ``f:NAME`` (a map key), ``k:{KEYS}``
(an item of a list keyed by its merge keys: ``containers`` by ``name`` — the table is
``patches.LIST_KEYS``), or ``v:VALUE`` (an item of a set such as ``finalizers``); other
lists are atomic, owned whole. ``metadata.managedFields`` stores, per manager and
operation (``Apply`` or ``Update``), its paths as a ``FieldsV1`` tree
(``{"f:spec": {"f:replicas": {}}}``, a ``"."`` key for an item owned as such).

* :func:`apply` (``PATCH`` as ``application/apply-patch+yaml``): the manager's applied
  configuration is merged into the live object; fields it applied before and applies no
  more are removed, unless another manager owns them too; a field another manager owns
  with a different value is a conflict — 409 ``Apply failed with N conflict(s)``,
  naming the manager and field — unless ``force`` takes it over.
* :func:`record_update` (any other write): the manager (``fieldManager``, else the
  ``User-Agent``'s product) takes the fields it changed from the others.

Known simplification: no schema, so ``LIST_KEYS`` decides associativity, and every
field (defaults included) is owned by whoever last changed it.
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from kproxy.testing.patches import list_key
from kproxy.testing.status import ApiError

__all__ = ["apply", "field_paths", "record_update"]

Obj = dict[str, Any]
Path = tuple[str, ...]

_SERVER_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
_SET_LISTS = frozenset({"finalizers"})


def _key_segment(item: Obj, keys: tuple[str, ...]) -> str:
    ident = {k: item[k] for k in keys if k in item}
    if "protocol" in keys and "protocol" not in ident:
        ident["protocol"] = "TCP"
    return "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)


def field_paths(obj: Any, prefix: Path = (), top: bool = True) -> dict[Path, Any]:
    """Every leaf path of ``obj`` (and each keyed list item's own ``.``) with its value."""
    out: dict[Path, Any] = {}
    if not isinstance(obj, dict):
        return out
    for name, value in obj.items():
        if top and name in ("apiVersion", "kind", "status"):
            continue
        if top and name == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SERVER_META}
            if not value:
                continue
        path = (*prefix, "f:" + name)
        if isinstance(value, dict) and value:
            out.update(field_paths(value, path, top=False))
        elif isinstance(value, list) and name in _SET_LISTS:
            for item in value:
                out[(*path, "v:" + json.dumps(item))] = item
        elif isinstance(value, list) and (keys := list_key(name, value)) is not None:
            for item in value:
                item_path = (*path, _key_segment(item, keys))
                out[(*item_path, ".")] = None
                out.update(field_paths(item, item_path, top=False))
        else:
            out[path] = value
    return out


def to_fields_v1(paths: set[Path]) -> Obj:
    tree: Obj = {}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
    return tree


def from_fields_v1(tree: Obj, prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for segment, child in tree.items():
        path = (*prefix, segment)
        if segment == "." or not child:
            paths.add(path)
        else:
            paths |= from_fields_v1(child, path)
    return paths


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], now: str, sub: str = "") -> Obj:
    entry: Obj = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now}
    entry.update({"fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)})
    if sub:
        entry["subresource"] = sub
    return entry


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owners(obj: Obj) -> list[Obj]:
    return [dict(e) for e in obj.get("metadata", {}).get("managedFields") or []]


def _go_path(path: Path) -> str:
    """structured-merge-diff's path string: ``.spec.replicas``, ``.spec.containers[name="web"].image``."""
    out = ""
    for segment in path:
        kind, _, rest = segment.partition(":")
        if segment == ".":
            continue
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            ident = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in ident.items()) + "]"
        else:
            out += f"[={rest}]"
    return out


def _manager_label(entry: Obj) -> str:
    """kube's ``printManager``: ``"kubectl"`` for an applier, ``"kubectl-edit" using v1`` for an updater."""
    label = json.dumps(str(entry.get("manager", "")))
    if entry.get("operation") == "Apply":
        return label
    return f"{label} using {entry.get('apiVersion', '')}"


def _conflict_error(conflicts: list[tuple[str, Path]]) -> ApiError:
    """kube's ``NewConflictError``: 409 ``Conflict``, one cause per field."""
    if len(conflicts) == 1:
        label, path = conflicts[0]
        text = f"Apply failed with 1 conflict: conflict with {label}: {_go_path(path)}"
    else:
        lines = []
        for label in sorted({m for m, _ in conflicts}):
            lines.append(f"conflicts with {label}:")
            lines.extend(f"- {_go_path(p)}" for m, p in conflicts if m == label)
        text = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": _go_path(p)} for m, p in conflicts
    ]
    return ApiError(409, "Conflict", text, {"causes": causes})


def _merge(live: Any, config: Any, field: str = "") -> Any:
    """The applied configuration merged into the live value (maps merge, keyed lists by key)."""
    if isinstance(config, dict) and isinstance(live, dict):
        out = copy.deepcopy(live)
        for key, value in config.items():
            out[key] = _merge(live.get(key), value, key)
        return out
    if isinstance(config, list) and isinstance(live, list) and field not in _SET_LISTS:
        keys = list_key(field, [*live, *config])
        if keys is not None:
            out_list = copy.deepcopy(live)
            for item in config:
                seg = _key_segment(item, keys)
                index = next((i for i, cur in enumerate(out_list) if _key_segment(cur, keys) == seg), None)
                if index is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[index] = _merge(out_list[index], item)
            return out_list
    if isinstance(config, list) and isinstance(live, list) and field in _SET_LISTS:
        return [*live, *(v for v in config if v not in live)]
    return copy.deepcopy(config)


def _remove(obj: Any, path: Path) -> None:
    """Remove the field at ``path`` (a leaf, a keyed item, or a set value) from ``obj``."""
    if path and path[-1] == ".":
        path = path[:-1]
    node = obj
    for index, segment in enumerate(path):
        last = index == len(path) - 1
        kind, _, rest = segment.partition(":")
        if kind == "f" and isinstance(node, dict):
            if last:
                node.pop(rest, None)
                return
            nxt = node.get(rest)
            if isinstance(nxt, list) and path[index + 1].startswith(("k:", "v:")):
                _remove_item(nxt, path[index + 1], last=index + 1 == len(path) - 1, rest=path[index + 2 :])
                return
            node = nxt
        else:
            return


def _remove_item(items: list[Any], segment: str, *, last: bool, rest: Path) -> None:
    kind, _, body = segment.partition(":")
    for i, item in enumerate(items):
        if kind == "v" and json.dumps(item) == body:
            items.pop(i)
            return
        if kind == "k" and isinstance(item, dict):
            ident = json.loads(body)
            if all(item.get(k, "TCP" if k == "protocol" else None) == v for k, v in ident.items()):
                if last:
                    items.pop(i)
                else:
                    _remove(item, rest)
                return


def apply(live: Obj | None, config: Obj, manager: str, *, force: bool, api_version: str, sub: str = "") -> Obj:
    """The object after ``manager`` applies ``config`` to ``live`` (None: it is created)."""
    applied = field_paths(config)
    new_paths = set(applied)
    now = _now()
    if live is None:
        result = copy.deepcopy(config)
        result.setdefault("metadata", {})["managedFields"] = [
            _entry(manager, "Apply", api_version, new_paths, now, sub)
        ]
        return result
    owners = _owners(live)
    current = field_paths(live)
    previous: set[Path] = set()
    conflicts: list[tuple[str, Path]] = []
    for entry in owners:
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous = paths
            continue
        for path in sorted(paths & new_paths):
            if path[-1] != "." and current.get(path) != applied.get(path):
                conflicts.append((_manager_label(entry), path))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    result = _merge(live, config)
    assert isinstance(result, dict)
    kept: list[Obj] = []
    others: set[Path] = set()
    for entry in owners:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if force:
            paths -= new_paths
        if paths:
            kept.append({**entry, "fieldsV1": to_fields_v1(paths)})
            others |= paths
    for path in sorted(previous - new_paths - others, key=len, reverse=True):
        _remove(result, path)
    kept.append(_entry(manager, "Apply", api_version, new_paths, now, sub))
    result["metadata"]["managedFields"] = kept
    return result


def record_update(old: Obj | None, new: Obj, manager: str, api_version: str, sub: str = "") -> None:
    """Give ``manager`` the fields it changed from ``old`` to ``new`` (in place, on ``new``)."""
    before = field_paths(old) if old is not None else {}
    after = field_paths(new)
    changed = {p for p in after if before.get(p, object()) != after[p] or p not in before}
    if sub == "status":
        return  # status is not tracked by the fake
    owners = _owners(old) if old is not None else []
    kept: list[Obj] = []
    mine: set[Path] = set()
    for entry in owners:
        paths = from_fields_v1(entry.get("fieldsV1") or {}) & set(after)
        if entry.get("manager") == manager and entry.get("operation") == "Update":
            mine = paths
            continue
        paths -= changed
        if paths:
            kept.append({**entry, "fieldsV1": to_fields_v1(paths)})
    mine |= changed
    if mine:
        kept.append(_entry(manager, "Update", api_version, mine, _now(), sub))
    new.setdefault("metadata", {})["managedFields"] = kept
