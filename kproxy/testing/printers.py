"""Table columns and cells for the workload, endpoint and account kinds (``tables`` has the core five).

As kube-apiserver 1.32's printers print them: deployments (READY UP-TO-DATE AVAILABLE),
replicasets (DESIRED CURRENT READY), endpoints, endpointslices, secrets,
serviceaccounts, and events (LAST SEEN TYPE REASON OBJECT MESSAGE, the same for both
event APIs). ``age`` is ``tables``' apimachinery ``HumanDuration`` of a timestamp.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

__all__ = ["CELLS", "COLUMNS"]

Obj = dict[str, Any]
Age = Callable[[str | None, datetime.datetime], str]


def _col(name: str, description: str = "", *, type_: str = "string", fmt: str = "", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", "Name must be unique within a namespace.", fmt="name")
_AGE = _col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.")
_WORKLOAD_WIDE = [
    _col("Containers", "Names of each container in the template.", priority=1),
    _col("Images", "Images referenced by each container in the template.", priority=1),
    _col("Selector", "Label selector for pods.", priority=1),
]

COLUMNS: dict[str, list[Obj]] = {
    "deployments": [
        _NAME,
        _col("Ready", "Number of the pod with ready state"),
        _col(
            "Up-to-date",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            type_="integer",
        ),
        _col(
            "Available",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            type_="integer",
        ),
        _AGE,
        *_WORKLOAD_WIDE,
    ],
    "replicasets": [
        _NAME,
        _col("Desired", "Replicas is the number of desired pods.", type_="integer"),
        _col("Current", "Replicas is the most recently observed number of replicas.", type_="integer"),
        _col("Ready", "The number of ready replicas for this replica set.", type_="integer"),
        _AGE,
        *_WORKLOAD_WIDE,
    ],
    "endpoints": [_NAME, _col("Endpoints", "Endpoints of the service"), _AGE],
    "endpointslices": [
        _NAME,
        _col("AddressType", "The IP protocol for this slice"),
        _col("Ports", "The ports this slice serves"),
        _col("Endpoints", "The addresses of the endpoints in this slice"),
        _AGE,
    ],
    "secrets": [
        _NAME,
        _col("Type", "The type of the secret"),
        _col("Data", "The number of keys", type_="integer"),
        _AGE,
    ],
    "serviceaccounts": [_NAME, _col("Secrets", "The number of secrets", type_="integer"), _AGE],
    "events": [
        _col("Last Seen", "Time when this Event was last observed."),
        _col("Type", "Type of this event (Normal, Warning), new types could be added in the future."),
        _col(
            "Reason",
            "A short, machine understandable string that gives the reason for the transition.",
        ),
        _col("Object", "The object this Event is about."),
        _col("Subobject", "The subobject (field path) this Event is about.", priority=1),
        _col("Source", "The component reporting this event.", priority=1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded.", priority=1),
        _col("Count", "The number of times this event has occurred.", type_="integer", priority=1),
        _col("Name", "The name of this event", priority=1),
    ],
}


def _workload_wide(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return [
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _deployment(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"
    cells = [obj["metadata"]["name"], ready, status.get("updatedReplicas", 0), status.get("availableReplicas", 0)]
    return [*cells, age(obj["metadata"].get("creationTimestamp"), now), *_workload_wide(obj)]


def _replica_set(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    cells = [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
    ]
    return [*cells, age(obj["metadata"].get("creationTimestamp"), now), *_workload_wide(obj)]


def _addresses(pairs: list[str]) -> str:
    """kube's formatEndpoints: the first three, then ``+ N more...``."""
    if not pairs:
        return "<none>"
    shown = ",".join(pairs[:3])
    return shown + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")


def _endpoints(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    pairs = [
        f"{a.get('ip')}:{p.get('port')}"
        for subset in obj.get("subsets") or []
        for p in subset.get("ports") or [{}]
        for a in subset.get("addresses") or []
    ]
    return [obj["metadata"]["name"], _addresses(pairs), age(obj["metadata"].get("creationTimestamp"), now)]


def _endpoint_slice(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    ports = ",".join(str(p.get("port", "")) for p in obj.get("ports") or []) or "<unset>"
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    meta = obj["metadata"]
    return [
        meta["name"],
        obj.get("addressType", ""),
        ports,
        _addresses(addresses),
        age(meta.get("creationTimestamp"), now),
    ]


def _secret(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    count = len(obj.get("data") or {})
    return [
        obj["metadata"]["name"],
        obj.get("type", "Opaque"),
        count,
        age(obj["metadata"].get("creationTimestamp"), now),
    ]


def _service_account(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    meta = obj["metadata"]
    return [meta["name"], len(obj.get("secrets") or []), age(meta.get("creationTimestamp"), now)]


def _event(obj: Obj, now: datetime.datetime, age: Age) -> list[Any]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    last = obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp") or obj.get("eventTime")
    first = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp") or obj.get("eventTime")
    source = obj.get("source") or obj.get("deprecatedSource") or {}
    component = source.get("component") or obj.get("reportingComponent") or obj.get("reportingController") or ""
    count = obj.get("count") or obj.get("deprecatedCount") or 1
    return [
        age(str(last)[:19] + "Z" if last else None, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        component,
        str(obj.get("message") or obj.get("note") or "").strip(),
        age(str(first)[:19] + "Z" if first else None, now),
        count,
        obj["metadata"]["name"],
    ]


CELLS: dict[str, Callable[[Obj, datetime.datetime, Age], list[Any]]] = {
    "deployments": _deployment,
    "replicasets": _replica_set,
    "endpoints": _endpoints,
    "endpointslices": _endpoint_slice,
    "secrets": _secret,
    "serviceaccounts": _service_account,
    "events": _event,
}
