"""``events.k8s.io/v1`` Events: the core ``v1`` Events, seen through the newer API.

kube-apiserver stores one Event and converts it for each API version; the fake stores
the core shape and renames on the way in and out (``regarding`` is ``involvedObject``,
``note`` is ``message``, ``reportingController`` is ``reportingComponent``, the
``deprecated*`` fields are ``source``, ``firstTimestamp``, ``lastTimestamp`` and
``count``), so an event written through either API is read through both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["from_core", "to_core"]

Obj = dict[str, Any]

_RENAMES = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_BACK = {v: k for k, v in _RENAMES.items()}


def from_core(obj: Obj) -> Obj:
    """A stored (core) Event as ``events.k8s.io/v1`` shows it."""
    out = {_RENAMES.get(k, k): v for k, v in obj.items()}
    if "apiVersion" in out:
        out["apiVersion"] = "events.k8s.io/v1"
    out.setdefault("eventTime", None)
    return out


def to_core(obj: Obj) -> Obj:
    """An ``events.k8s.io/v1`` Event as the store keeps it."""
    out = {_BACK.get(k, k): v for k, v in obj.items()}
    if "apiVersion" in out:
        out["apiVersion"] = "v1"
    return out
