"""Patches, as kube-apiserver applies them to a stored object.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null``
  deletes, lists are replaced.
* Strategic merge patch (``application/strategic-merge-patch+json``, what ``kubectl
  apply``, ``edit``, ``label`` and ``debug`` send): a merge patch whose lists of objects
  merge by their key (``containers`` by ``name``, ``ports`` by ``containerPort`` or
  ``port``, ``conditions`` by ``type``; ``LIST_KEYS``), with the directives
  ``$patch: delete|replace|merge``, ``$setElementOrder/FIELD``,
  ``$deleteFromPrimitiveList/FIELD`` and ``$retainKeys``; ``finalizers`` merge as a set.
  The keys come from a table of field names, not from the OpenAPI schema, so a list
  whose items lack the key is replaced, as an atomic list would be.
* JSON patch (RFC 6902, ``application/json-patch+json``): add, remove, replace, move,
  copy, test.
"""

from __future__ import annotations

import copy
from typing import Any

from kproxy.testing.status import ApiError

__all__ = ["LIST_KEYS", "apply_patch", "json_patch", "list_key", "merge_patch", "strategic_merge_patch"]

Obj = dict[str, Any]

# Field name -> the key its items merge by (kube's patchMergeKey / listMapKeys, first key).
LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "schedulingGates": ("name",),
    "resourceClaims": ("name",),
    "podIPs": ("ip",),
    "hostIPs": ("ip",),
    "secrets": ("name",),
}
_SET_LISTS = frozenset({"finalizers"})


def list_key(field: str, items: list[Any]) -> tuple[str, ...] | None:
    """The keys the items of list ``field`` merge by, or None if the list is atomic.

    ``ports`` are keyed by ``containerPort`` (and ``protocol``) in containers and by
    ``port`` (and ``protocol``) in services; node ``addresses`` by ``type``.
    """
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    keys = LIST_KEYS.get(field)
    if field == "ports":
        keys = ("containerPort", "protocol") if any("containerPort" in i for i in items) else ("port", "protocol")
    elif field == "addresses" and all("type" in i for i in items):
        keys = ("type",)
    if keys is None or not all(keys[0] in item for item in items):
        return None
    return keys


def apply_patch(target: Obj, patch: Any, patch_type: str) -> Obj:
    """``patch_type``: ``merge``, ``strategic`` or ``json``."""
    if patch_type == "json":
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError.bad_request("a merge patch must be a JSON object")
    if patch_type == "strategic":
        result = strategic_merge_patch(target, patch)
    else:
        result = merge_patch(target, patch)
    if not isinstance(result, dict):
        raise ApiError.bad_request("the patch produced a non-object")
    return result


def _identity(item: Obj, keys: tuple[str, ...]) -> tuple[Any, ...]:
    # A missing protocol means TCP, as the server's defaulting would make it.
    return tuple(item.get(k, "TCP" if k == "protocol" else None) for k in keys)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch of ``patch`` onto ``target`` (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            gone = value if isinstance(value, list) else []
            result[field] = [v for v in result.get(field) or [] if v not in gone]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    current_items = current if isinstance(current, list) else []
    if field in _SET_LISTS:
        return [*current_items, *(v for v in patch if v not in current_items)]
    keys = list_key(field, [i for i in [*current_items, *patch] if not (isinstance(i, dict) and "$patch" in i)])
    if keys is None:
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    merged = [copy.deepcopy(i) for i in current_items]
    for item in patch:
        if not isinstance(item, dict):
            continue
        ident = _identity(item, keys)
        index = next((n for n, cur in enumerate(merged) if _identity(cur, keys) == ident), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Obj, operations: Any) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise ApiError.bad_request("json patch must be a JSON array of operations")
    doc: Any = copy.deepcopy(target)
    for op in operations:
        try:
            doc = _apply_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from None
    if not isinstance(doc, dict):
        raise ApiError.bad_request("json patch produced a non-object")
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _apply_op(doc: Any, op: Any) -> Any:
    kind = op["op"]
    parts = _pointer(op["path"])
    if kind == "test":
        if _get(doc, parts) != op["value"]:
            raise ValueError(f"test failed at {op['path']}")
        return doc
    if kind in ("move", "copy"):
        value = copy.deepcopy(_get(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _remove(doc, _pointer(op["from"]))
        return _add(doc, parts, value)
    if kind == "remove":
        return _remove(doc, parts)
    if kind == "replace":
        _get(doc, parts)  # must exist
        return _add(_remove(doc, parts), parts, op["value"])
    if kind == "add":
        return _add(doc, parts, op["value"])
    raise ValueError(f"unknown operation {kind!r}")


def _get(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _get(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc
