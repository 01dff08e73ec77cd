"""The store's watch machinery: what a watch selects, and the events it streams.

In: each committed change of the store (:class:`Change`); out, per open :class:`Watch`,
the events its client sees — ``ADDED``, ``MODIFIED``, ``DELETED`` as kube-apiserver's
watch cache sends them (an object that leaves a watch's selection is ``DELETED`` for
that watch, one that enters it ``ADDED``), ``BOOKMARK`` and ``ERROR`` when the store
starts a watch with them. Field selectors support what kube-apiserver supports per
resource (``selectable_fields``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Change", "Filter", "Watch", "WatchEvent", "field_value", "selectable_fields"]

Obj = dict[str, Any]

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
    "secrets": ("type",),
    "replicasets": ("status.replicas",),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def selectable_fields(resource: str) -> tuple[str, ...]:
    """The field-selector paths ``resource`` supports."""
    return _COMMON_FIELDS + _RESOURCE_FIELDS.get(resource, ())


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


@dataclass(frozen=True)
class Change:
    rv: int
    type: str
    resource: str
    namespace: str
    obj: Obj
    old: Obj | None


def field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    if path == "source":  # events: the reporting component of the (legacy) source
        value = (obj.get("source") or {}).get("component")
        return str(value or "")
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Filter:
    resource: str
    namespace: str | None
    labels: Callable[[Any], bool]
    fields: tuple[tuple[str, str, bool], ...]

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if not self.labels(meta.get("labels") or {}):
            return False
        return all((field_value(obj, path) == value) == equal for path, value, equal in self.fields)


class _Registry(Protocol):
    def _forget(self, watch: Watch) -> None: ...


class Watch:
    """One open watch: initial events, then live changes, until ``close()``."""

    def __init__(self, registry: _Registry, flt: Filter, initial: list[WatchEvent]) -> None:
        self._registry = registry
        self.filter = flt
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        for event in initial:
            self._queue.put_nowait(event)
        self.closed = False

    def offer(self, change: Change) -> None:
        new_match = self.filter.matches(change.obj)
        old_match = change.old is not None and self.filter.matches(change.old)
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

    def pending(self) -> list[WatchEvent]:
        """Take the events queued so far (for replaying history into a new watch)."""
        events: list[WatchEvent] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event is not None:
                events.append(event)
        return events

    async def next(self) -> WatchEvent | None:
        """The next event, or None once closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._registry._forget(self)
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[WatchEvent]:
        while (event := await self.next()) is not None:
            yield event
