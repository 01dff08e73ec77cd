"""The fake API server's in-memory object store, with resource versions and watches.

Objects are plain JSON dicts keyed by resource (``"pods"``), namespace (``""`` for
cluster-scoped resources) and name. Every write bumps one global resource version,
as etcd does, and is kept in a bounded history (``history``, default the last 1,000
changes) so a watch can resume from a recent ``resourceVersion``; an older one gets
``410 Gone`` (``Expired``) like kube-apiserver, and so does a list at an exact version
the history no longer holds. ``compact()`` forgets the history at once, as an etcd
compaction does, so a test can send any client down its re-list path.

Tests may call the store directly (``api.store.create("configmaps", {...})``); the
change reaches open watches and the controllers (``on_change``) at once, exactly as a
write through the API would. Methods raise ``ApiError`` carrying the ``Status``
kube-apiserver would answer. Every write takes ``dry_run``: everything is checked and
the would-be object returned, nothing is stored or announced (``dryRun=All``).

Stored dicts are never modified in place: every write stores a new dict. Methods return
deep copies unless ``copy=False`` is passed (the server does that to serialize at once).

Known differences from kube-apiserver: deletion is immediate (no graceful deletion, no
finalizers, no ``Terminating`` namespaces); ``limit``/``continue`` pages read the
current state, not a snapshot at the first page's resource version; no field is
immutable.
"""

from __future__ import annotations

import base64
import binascii
import copy as copy_module
import datetime
import json
import secrets
import string
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from kproxy.testing import objects, patches
from kproxy.testing.resources import ResourceType, resource_by_name
from kproxy.testing.selectors import SelectorError, parse_field_selector, parse_label_selector
from kproxy.testing.status import ApiError
from kproxy.testing.watches import Change, Filter, Watch, WatchEvent, selectable_fields

__all__ = ["DEFAULT_HISTORY", "ApiError", "Store", "Watch", "WatchEvent"]

Obj = dict[str, Any]
Listener = Callable[[Change], None]

DEFAULT_HISTORY = 1000
_PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
_GENERATION_TRACKED = frozenset({"deployments", "replicasets"})  # metadata.generation counts spec changes


class Store:
    """The fake cluster's objects, as JSON dicts."""

    def __init__(self, *, clock: Callable[[], datetime.datetime] | None = None, history: int = DEFAULT_HISTORY) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1 change, not {history}")
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 1
        self._history: deque[Change] = deque(maxlen=history)
        self._compacted = 1  # the oldest version a watch may start after
        self._watchers: set[Watch] = set()
        self._allocator = objects.Allocator()
        self._listeners: list[Listener] = []
        self._pending: deque[Change] = deque()
        self._dispatching = False

    # -- reads -------------------------------------------------------------------

    def resource_version(self) -> str:
        """The current (latest) resource version, as a string."""
        return str(self._rv)

    def open_watches(self) -> int:
        return len(self._watchers)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` after every committed change (it may write; those changes queue)."""
        self._listeners.append(listener)

    def get(self, resource: str, name: str, namespace: str | None = None, *, copy: bool = True) -> Obj:
        rtype = _rtype(resource)
        ns = _scope(rtype, namespace)
        obj = self._objects.get(resource, {}).get((ns, name))
        if obj is None:
            raise ApiError.not_found(rtype.name, name, rtype.group)
        return copy_module.deepcopy(obj) if copy else obj

    def find(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        """The stored object (not a copy: do not modify), or None."""
        rtype = _rtype(resource)
        return self._objects.get(resource, {}).get((_scope(rtype, namespace), name))

    def items(self, resource: str, namespace: str | None = None) -> list[Obj]:
        """The stored objects of ``resource`` (not copies), in key order."""
        bucket = self._objects.get(resource, {})
        return [bucket[k] for k in sorted(bucket) if namespace is None or k[0] == namespace]

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        copy: bool = True,
    ) -> Obj:
        """A ``KindList`` with ``metadata.resourceVersion`` (and ``continue`` when paged)."""
        rtype = _rtype(resource)
        flt = self._filter(rtype, namespace, label_selector, field_selector)
        start = None
        if continue_token:
            token_rv, start = _decode_continue(continue_token)
            if token_rv < self._compacted:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the first "
                    "chunk was returned and now may show up in the list.",
                )
        elif resource_version not in ("", "0") and _parse_rv(resource_version) < self._compacted:
            raise _too_old(_parse_rv(resource_version), self._compacted)
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
        return {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta, "items": items}

    # -- writes ------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
        """Create (POST): the server sets uid, resourceVersion and creationTimestamp."""
        return self._create(resource, obj, namespace, keep_timestamp=False, dry_run=dry_run)

    def seed(self, resource: str, obj: Obj) -> Obj:
        """Create keeping the object's ``creationTimestamp``: for a cluster that looks lived-in."""
        return self._create(resource, obj, None, keep_timestamp=True, dry_run=False)

    def _create(self, resource: str, obj: Obj, namespace: str | None, *, keep_timestamp: bool, dry_run: bool) -> Obj:
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
        if (ns, name) in self._objects.get(resource, {}):
            qualified = _qualified(rtype)
            raise ApiError(
                409, "AlreadyExists", f'{qualified} "{name}" already exists', {"name": name, **_group_kind(rtype)}
            )
        obj["kind"] = rtype.kind
        obj["apiVersion"] = rtype.api_version
        if rtype.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        if not (keep_timestamp and meta.get("creationTimestamp")):
            meta["creationTimestamp"] = _timestamp(self._clock())
        for key in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(key, None)
        if resource in _GENERATION_TRACKED:
            meta["generation"] = 1
        objects.default(rtype, obj, self._allocator, created=meta["creationTimestamp"])
        if dry_run:
            return obj
        return self._commit("ADDED", rtype, ns, obj, None)

    def update(
        self,
        resource: str,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
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
                f'Operation cannot be fulfilled on {_qualified(rtype)} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                {"name": name, **_group_kind(rtype)},
            )
        new = self._replaced(rtype, old, obj, ns, subresource)
        if dry_run:
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return new
        return self._commit("MODIFIED", rtype, ns, new, old)

    def _replaced(self, rtype: ResourceType, old: Obj, obj: Obj, ns: str, subresource: str) -> Obj:
        """What ``obj`` replacing ``old`` stores: status apart, server fields kept, defaults filled."""
        if subresource == "status":
            new = copy_module.deepcopy(old)
            new["status"] = obj.get("status", {})
            return new
        if subresource == "ephemeralcontainers":
            return objects.with_ephemeral_containers(old, obj)
        objects.validate(rtype, obj)
        new = obj
        meta = new["metadata"]
        if "status" in old:
            # The main resource ignores status changes; /status is for those.
            new["status"] = copy_module.deepcopy(old["status"])
        new["kind"] = rtype.kind
        new["apiVersion"] = rtype.api_version
        meta["uid"] = old["metadata"]["uid"]
        meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        if rtype.namespaced:
            meta["namespace"] = ns
        if rtype.name in _GENERATION_TRACKED:
            generation = int(old["metadata"].get("generation", 1))
            meta["generation"] = generation + (new.get("spec") != old.get("spec"))
        objects.default(rtype, new, self._allocator, created=meta["creationTimestamp"], old=old)
        return new

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """Patch an object. ``patch_type``: ``merge``, ``strategic`` or ``json``."""
        rtype = _rtype(resource)
        ns = _scope(rtype, namespace)
        old = self.get(resource, name, ns)
        new = patches.apply_patch(old, patch, patch_type)
        meta = new.setdefault("metadata", {})
        if meta.get("name") != name:
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if meta.get("resourceVersion") == old["metadata"]["resourceVersion"]:
            meta.pop("resourceVersion")  # only a changed one is a precondition
        return self.update(resource, new, ns, subresource=subresource, dry_run=dry_run)

    def delete(self, resource: str, name: str, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
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
            if not dry_run:
                for other, bucket in list(self._objects.items()):
                    for key in sorted(k for k in bucket if k[0] == name):
                        if key in bucket:
                            self.delete(other, key[1], name)
        gone = copy_module.deepcopy(old)
        if not dry_run:
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
            initial = [WatchEvent("ADDED", obj) for obj in self.items(resource) if flt.matches(obj)]
            if send_initial_events:
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {
                        "resourceVersion": self.resource_version(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                initial.append(WatchEvent("BOOKMARK", bookmark))
        else:
            since = _parse_rv(resource_version)
            if since < self._compacted:
                watch = Watch(self, flt, [WatchEvent("ERROR", _too_old(since, self._compacted).status())])
                watch.close()
                return watch
            probe = Watch(self, flt, [])
            for change in self._history:
                if change.rv > since and change.resource == resource:
                    probe.offer(change)
            initial = probe.pending()
        watch = Watch(self, flt, initial)
        self._watchers.add(watch)
        return watch

    def close_watches(self) -> None:
        for watch in list(self._watchers):
            watch.close()

    def compact(self) -> None:
        """Forget the history, as an etcd compaction after unrelated writes would: every version
        handed out so far now answers 410 Gone; a new list gets one that works."""
        self._history.clear()
        self._rv += 1
        self._compacted = self._rv

    def _forget(self, watch: Watch) -> None:
        self._watchers.discard(watch)

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
        change = Change(self._rv, event, rtype.name, ns, obj, old)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv  # the oldest change falls out of the window
        self._history.append(change)
        for watch in list(self._watchers):
            if watch.filter.resource == rtype.name:
                watch.offer(change)
        self._announce(change)
        return copy_module.deepcopy(obj)

    def _announce(self, change: Change) -> None:
        """Tell the listeners, one change at a time, in order, also when they write themselves."""
        self._pending.append(change)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for listener in self._listeners:
                    listener(current)
        finally:
            self._dispatching = False

    def _filter(self, rtype: ResourceType, namespace: str | None, labels: str, fields: str) -> Filter:
        try:
            label_test = parse_label_selector(labels)
            requirements = parse_field_selector(fields)
        except SelectorError as exc:
            raise ApiError.bad_request(str(exc)) from None
        allowed = selectable_fields(rtype.name)
        for req in requirements:
            if req.path not in allowed:
                raise ApiError.bad_request(f"field label not supported: {req.path}")
        return Filter(
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


def _qualified(rtype: ResourceType) -> str:
    """Go's ``GroupResource.String()``: ``pods``, ``deployments.apps``."""
    return f"{rtype.name}.{rtype.group}" if rtype.group else rtype.name


def _group_kind(rtype: ResourceType) -> dict[str, str]:
    return {"group": rtype.group, "kind": rtype.name} if rtype.group else {"kind": rtype.name}


def _scope(rtype: ResourceType, namespace: str | None) -> str:
    return (namespace or "default") if rtype.namespaced else ""


def _timestamp(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _too_old(asked: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {asked} ({oldest})")


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


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ns, _, name = str(data["start"]).partition("/")
        rv = int(data["rv"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ApiError.bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
    return rv, (ns, name)
