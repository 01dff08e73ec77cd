"""The fake API server's in-memory object store, with resource versions and watches.

Objects are plain JSON dicts keyed by resource (``"pods"``), namespace (``""`` for
cluster-scoped resources) and name. Every write bumps one global resource version,
as etcd does, and is kept in a bounded history so a watch can resume from a recent
``resourceVersion``; older ones get ``410 Gone`` (``Expired``) like kube-apiserver.

Tests may call the store directly (``api.store.create("configmaps", {...})``); the
change reaches open watches at once, exactly as a write through the API would.
Methods raise ``ApiError`` carrying the ``Status`` kube-apiserver would answer.

Stored dicts are never modified in place: every write stores a new dict. Methods return
deep copies unless ``copy=False`` is passed (the server does that to serialize at once).

Known differences from kube-apiserver: deletion is immediate (no graceful deletion, no
finalizers, no ``Terminating`` namespaces); ``limit``/``continue`` pages read the
current state, not a snapshot at the first page's resource version; no field is
immutable; ``dryRun`` is not implemented.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy as copy_module
import datetime
import json
import secrets
import string
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kproxy.testing import objects
from kproxy.testing.resources import ResourceType, resource_by_name
from kproxy.testing.selectors import SelectorError, parse_field_selector, parse_label_selector
from kproxy.testing.status import ApiError

__all__ = ["ApiError", "Store", "Watch", "WatchEvent"]

Obj = dict[str, Any]

_HISTORY = 10_000
_PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_RESOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "namespaces": ("status.phase",),
    "nodes": ("spec.unschedulable",),
    "services": ("spec.clusterIP", "spec.type"),
}


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


@dataclass(frozen=True)
class _Change:
    rv: int
    type: str
    resource: str
    namespace: str
    obj: Obj
    old: Obj | None


@dataclass(frozen=True)
class _Filter:
    resource: str
    namespace: str | None
    labels: Callable[[Mapping[str, str]], bool]
    fields: tuple[tuple[str, str, bool], ...]

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if not self.labels(meta.get("labels") or {}):
            return False
        return all((_field_value(obj, path) == value) == equal for path, value, equal in self.fields)


class Watch:
    """One open watch: initial events, then live changes, until ``close()``."""

    def __init__(self, store: Store, flt: _Filter, initial: list[WatchEvent]) -> None:
        self._store = store
        self._filter = flt
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        for event in initial:
            self._queue.put_nowait(event)
        self.closed = False

    def _offer(self, change: _Change) -> None:
        new_match = self._filter.matches(change.obj)
        old_match = change.old is not None and self._filter.matches(change.old)
        if change.type == "DELETED":
            if new_match:
                self._queue.put_nowait(WatchEvent("DELETED", change.obj))
        elif change.type == "ADDED" or not old_match:
            if new_match:
                self._queue.put_nowait(WatchEvent("ADDED", change.obj))
        elif new_match:
            self._queue.put_nowait(WatchEvent("MODIFIED", change.obj))
        else:
            # The object left the selection: watchers see it go, as with kube-apiserver.
            self._queue.put_nowait(WatchEvent("DELETED", change.obj))

    async def next(self) -> WatchEvent | None:
        """The next event, or None once closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._store._watchers.discard(self)
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        while (event := await self.next()) is not None:
            yield event


class Store:
    """Namespaces, nodes, pods, services and configmaps, as JSON dicts."""

    def __init__(self, *, clock: Callable[[], datetime.datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 1
        self._history: deque[_Change] = deque(maxlen=_HISTORY)
        self._watchers: set[Watch] = set()
        self._allocator = objects.Allocator()

    # -- reads -------------------------------------------------------------------

    def resource_version(self) -> str:
        """The current (latest) resource version, as a string."""
        return str(self._rv)

    def open_watches(self) -> int:
        return len(self._watchers)

    def get(self, resource: str, name: str, namespace: str | None = None, *, copy: bool = True) -> Obj:
        rtype = _rtype(resource)
        ns = _scope(rtype, namespace)
        obj = self._objects.get(resource, {}).get((ns, name))
        if obj is None:
            raise ApiError.not_found(resource, name)
        return copy_module.deepcopy(obj) if copy else obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        copy: bool = True,
    ) -> Obj:
        """A ``KindList`` with ``metadata.resourceVersion`` (and ``continue`` when paged)."""
        rtype = _rtype(resource)
        flt = self._filter(rtype, namespace, label_selector, field_selector)
        start = _decode_continue(continue_token) if continue_token else None
        items = []
        for key in sorted(self._objects.get(resource, {})):
            if start is not None and key <= start:
                continue
            obj = self._objects[resource][key]
            if flt.matches(obj):
                items.append(obj)
        meta: Obj = {"resourceVersion": self.resource_version()}
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = _encode_continue(self._rv, (last.get("namespace", ""), last["name"]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if copy:
            items = copy_module.deepcopy(items)
        # List items carry no kind/apiVersion in kube-apiserver's JSON.
        items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
        return {"kind": rtype.list_kind, "apiVersion": "v1", "metadata": meta, "items": items}

    # -- writes ------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        """Create (POST): the server sets uid, resourceVersion and creationTimestamp."""
        return self._create(resource, obj, namespace, keep_timestamp=False)

    def seed(self, resource: str, obj: Obj) -> Obj:
        """Create keeping the object's ``creationTimestamp``: for a cluster that looks lived-in."""
        return self._create(resource, obj, None, keep_timestamp=True)

    def _create(self, resource: str, obj: Obj, namespace: str | None, *, keep_timestamp: bool) -> Obj:
        rtype = _rtype(resource)
        obj = copy_module.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        ns = self._request_namespace(rtype, namespace, meta)
        if rtype.namespaced:
            self._require_namespace(ns)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            meta["name"] = meta["generateName"] + suffix
        objects.validate(rtype, obj)
        name = meta["name"]
        bucket = self._objects.setdefault(resource, {})
        if (ns, name) in bucket:
            raise ApiError(
                409, "AlreadyExists", f'{resource} "{name}" already exists', {"name": name, "kind": resource}
            )
        obj["kind"] = rtype.kind
        obj["apiVersion"] = "v1"
        if rtype.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        if not (keep_timestamp and meta.get("creationTimestamp")):
            meta["creationTimestamp"] = _timestamp(self._clock())
        for key in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(key, None)
        objects.default(rtype, obj, self._allocator, created=meta["creationTimestamp"])
        return self._commit("ADDED", rtype, ns, obj, None)

    def update(self, resource: str, obj: Obj, namespace: str | None = None, *, subresource: str = "") -> Obj:
        """Replace an object (PUT); a stale ``metadata.resourceVersion`` is a 409 Conflict."""
        rtype = _rtype(resource)
        obj = copy_module.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        ns = self._request_namespace(rtype, namespace, meta)
        name = meta.get("name", "")
        old = self.get(resource, name, ns, copy=False)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                {"name": name, "kind": resource},
            )
        if subresource == "status":
            new = copy_module.deepcopy(old)
            new["status"] = obj.get("status", {})
        else:
            objects.validate(rtype, obj)
            new = obj
            if "status" in old:
                # The main resource ignores status changes; /status is for those.
                new["status"] = copy_module.deepcopy(old["status"])
            new["kind"] = rtype.kind
            new["apiVersion"] = "v1"
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            if rtype.namespaced:
                meta["namespace"] = ns
            objects.default(rtype, new, self._allocator, created=meta["creationTimestamp"], old=old)
        return self._commit("MODIFIED", rtype, ns, new, old)

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str = "",
    ) -> Obj:
        """Patch an object. ``patch_type``: ``merge`` (also used for strategic) or ``json``."""
        rtype = _rtype(resource)
        ns = _scope(rtype, namespace)
        old = self.get(resource, name, ns)
        if patch_type == "json":
            new = objects.json_patch(old, patch)
        else:
            if not isinstance(patch, dict):
                raise ApiError.bad_request("a merge patch must be a JSON object")
            new = objects.merge_patch(old, patch)
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("resourceVersion") == old["metadata"]["resourceVersion"]:
            meta.pop("resourceVersion")  # only a changed one is a precondition
        return self.update(resource, new, ns, subresource=subresource)

    def delete(self, resource: str, name: str, namespace: str | None = None) -> Obj:
        """Delete at once (no grace period) and return the object's last state."""
        rtype = _rtype(resource)
        ns = _scope(rtype, namespace)
        old = self.get(resource, name, ns, copy=False)
        if resource == "namespaces":
            if name in _PROTECTED_NAMESPACES:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    {"name": name, "kind": "namespaces"},
                )
            for other, bucket in self._objects.items():
                for key in sorted(k for k in bucket if k[0] == name):
                    self.delete(other, key[1], name)
        gone = copy_module.deepcopy(old)
        self._commit("DELETED", rtype, ns, gone, old)
        return copy_module.deepcopy(gone)

    # -- watches -----------------------------------------------------------------

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        send_initial_events: bool = False,
    ) -> Watch:
        """Open a watch. ``resource_version`` "" or "0": ADDED events for what exists, then live.

        A newer version replays the kept history after it; one older than the history
        starts the watch with an ``ERROR`` event (410 Expired), as kube-apiserver does.
        ``send_initial_events`` ends the initial events with a BOOKMARK annotated
        ``k8s.io/initial-events-end`` (the streaming-list protocol).
        """
        rtype = _rtype(resource)
        flt = self._filter(rtype, namespace, label_selector, field_selector)
        initial: list[WatchEvent] = []
        if resource_version in ("", "0") or send_initial_events:
            for key in sorted(self._objects.get(resource, {})):
                obj = self._objects[resource][key]
                if flt.matches(obj):
                    initial.append(WatchEvent("ADDED", obj))
            if send_initial_events:
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": "v1",
                    "metadata": {
                        "resourceVersion": self.resource_version(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                initial.append(WatchEvent("BOOKMARK", bookmark))
        else:
            since = _parse_rv(resource_version)
            oldest = self._history[0].rv if self._history else self._rv + 1
            if since < oldest - 1:
                expired = ApiError(410, "Expired", f"too old resource version: {since} ({oldest - 1})")
                initial.append(WatchEvent("ERROR", expired.status()))
                watch = Watch(self, flt, initial)
                watch.close()
                return watch
            probe = Watch(self, flt, [])
            for change in self._history:
                if change.rv > since and change.resource == resource:
                    probe._offer(change)
            while not probe._queue.empty():
                event = probe._queue.get_nowait()
                if event is not None:
                    initial.append(event)
        watch = Watch(self, flt, initial)
        self._watchers.add(watch)
        return watch

    def close_watches(self) -> None:
        for watch in list(self._watchers):
            watch.close()

    # -- internals ---------------------------------------------------------------

    def _commit(self, event: str, rtype: ResourceType, ns: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(rtype.name, {})
        key = (ns, obj["metadata"]["name"])
        if event == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        change = _Change(self._rv, event, rtype.name, ns, obj, old)
        self._history.append(change)
        for watch in list(self._watchers):
            if watch._filter.resource == rtype.name:
                watch._offer(change)
        return copy_module.deepcopy(obj)

    def _filter(self, rtype: ResourceType, namespace: str | None, labels: str, fields: str) -> _Filter:
        try:
            label_test = parse_label_selector(labels)
            requirements = parse_field_selector(fields)
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from None
        allowed = _COMMON_FIELDS + _RESOURCE_FIELDS.get(rtype.name, ())
        for req in requirements:
            if req.path not in allowed:
                raise ApiError.bad_request(f"field label not supported: {req.path}")
        return _Filter(
            rtype.name,
            namespace if rtype.namespaced and namespace else None,
            label_test,
            tuple((r.path, r.value, r.equal) for r in requirements),
        )

    def _request_namespace(self, rtype: ResourceType, namespace: str | None, meta: Obj) -> str:
        if not rtype.namespaced:
            return ""
        body_ns = meta.get("namespace") or ""
        if namespace is None:
            return str(body_ns or "default")
        if body_ns and body_ns != namespace:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return namespace

    def _require_namespace(self, ns: str) -> None:
        if ("", ns) not in self._objects.get("namespaces", {}):
            raise ApiError.not_found("namespaces", ns)


def _rtype(resource: str) -> ResourceType:
    rtype = resource_by_name(resource)
    if rtype is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
    return rtype


def _scope(rtype: ResourceType, namespace: str | None) -> str:
    return (namespace or "default") if rtype.namespaced else ""


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _timestamp(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rv(value: str) -> int:
    try:
        rv = int(value)
    except ValueError:
        raise ApiError.bad_request(f'invalid resource version "{value}"') from None
    if rv < 0:
        raise ApiError.bad_request(f'invalid resource version "{value}"')
    return rv


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": "/".join(key)}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = str(data["start"]).partition("/")
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ApiError.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    return (ns, name)
