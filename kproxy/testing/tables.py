"""Server-side printing: ``meta.k8s.io/v1 Table`` and ``PartialObjectMetadata`` answers.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``
and prints the server's columns as they come. The columns and cell formats here follow
kube-apiserver 1.32's printers for the kinds the fake serves (pods: NAME READY STATUS
RESTARTS AGE, wide: IP NODE NOMINATED NODE READINESS GATES; services, configmaps,
namespaces, nodes likewise). Ages use apimachinery's ``HumanDuration`` rounding.

Each row carries the object as ``PartialObjectMetadata`` (``includeObject=Metadata``, the
default), the full object (``Object``), or nothing (``None``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from kproxy.testing import printers

__all__ = ["human_duration", "partial_metadata", "partial_metadata_list", "to_table"]

Obj = dict[str, Any]

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is not guaranteed to be set in happens-before order across separate operations. Clients may "
    "not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. "
    "Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


def _col(name: str, description: str = "", *, type_: str = "string", fmt: str = "", priority: int = 0) -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", _NAME_DOC, fmt="name")
_AGE = _col("Age", _AGE_DOC)

_COLUMNS: dict[str, list[Obj]] = {
    "pods": [
        _NAME,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted.",
        ),
        _AGE,
        _col("IP", "podIP address allocated to the pod. Routable at least within the cluster.", priority=1),
        _col("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods.", priority=1),
        _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.", priority=1),
    ],
    "services": [
        _NAME,
        _col("Type", "type determines how the Service is exposed."),
        _col("Cluster-IP", "clusterIP is the IP address of the service."),
        _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster accept traffic."),
        _col("Port(s)", "The list of ports that are exposed by this service."),
        _AGE,
        _col(
            "Selector", "Route service traffic to pods with label keys and values matching this selector.", priority=1
        ),
    ],
    "configmaps": [
        _NAME,
        _col("Data", "Data contains the configuration data.", type_="integer"),
        _AGE,
    ],
    "namespaces": [
        _NAME,
        _col("Status", "The status of the namespace"),
        _AGE,
    ],
    "nodes": [
        _NAME,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE,
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
        _col("External-IP", "List of addresses reachable to the node.", priority=1),
        _col("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
        _col("Kernel-Version", "Kernel Version reported by the node.", priority=1),
        _col("Container-Runtime", "Container Runtime Version reported by the node.", priority=1),
    ],
}


def human_duration(seconds: float) -> str:
    """apimachinery's ``duration.HumanDuration``: ``45s``, ``5m3s``, ``3h``, ``2d4h``, ``12d``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: Obj, now: datetime.datetime) -> str:
    return _age_of(obj.get("metadata", {}).get("creationTimestamp"), now)


def _age_of(stamp: str | None, now: datetime.datetime) -> str:
    if not stamp:
        return "<unknown>"
    created = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return human_duration((now - created).total_seconds())


def _pod_cells(obj: Obj, now: datetime.datetime) -> list[Any]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    if obj.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        obj["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


def _service_cells(obj: Obj, now: datetime.datetime) -> list[Any]:
    spec = obj.get("spec", {})
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    external = ",".join(spec.get("externalIPs") or [])
    if spec.get("type") == "ExternalName":
        external = spec.get("externalName", "")
    elif spec.get("type") == "LoadBalancer":
        ingress = obj.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or "<pending>"
    selector = spec.get("selector") or {}
    return [
        obj["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external or "<none>",
        ports or "<none>",
        _age(obj, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _configmap_cells(obj: Obj, now: datetime.datetime) -> list[Any]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [obj["metadata"]["name"], count, _age(obj, now)]


def _namespace_cells(obj: Obj, now: datetime.datetime) -> list[Any]:
    return [obj["metadata"]["name"], obj.get("status", {}).get("phase", "Active"), _age(obj, now)]


def _node_cells(obj: Obj, now: datetime.datetime) -> list[Any]:
    status = obj.get("status", {})
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if obj.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    labels = obj["metadata"].get("labels") or {}
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))
    info = status.get("nodeInfo", {})
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a["address"] for a in addresses if a.get("type") == kind), "<none>")

    return [
        obj["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(obj, now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


_CELLS: dict[str, Callable[[Obj, datetime.datetime], list[Any]]] = {
    "pods": _pod_cells,
    "services": _service_cells,
    "configmaps": _configmap_cells,
    "namespaces": _namespace_cells,
    "nodes": _node_cells,
}


def partial_metadata(obj: Obj, api_version: str = "meta.k8s.io/v1") -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata", {})}


def partial_metadata_list(items: list[Obj], list_meta: Obj, api_version: str = "meta.k8s.io/v1") -> Obj:
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": api_version,
        "metadata": list_meta,
        "items": [{"metadata": item.get("metadata", {})} for item in items],
    }


def to_table(
    resource: str,
    items: list[Obj],
    list_meta: Obj,
    *,
    include_object: str = "Metadata",
    api_version: str = "meta.k8s.io/v1",
    headers: bool = True,
    now: datetime.datetime | None = None,
) -> Obj:
    now = now or datetime.datetime.now(datetime.UTC)
    rows = []
    for item in items:
        if resource in _CELLS:
            cells = _CELLS[resource](item, now)
        else:
            cells = printers.CELLS[resource](item, now, _age_of)
        row: Obj = {"cells": cells}
        if include_object == "Object":
            row["object"] = item
        elif include_object != "None":
            row["object"] = partial_metadata(item, api_version)
        rows.append(row)
    table: Obj = {"kind": "Table", "apiVersion": api_version, "metadata": list_meta}
    columns = _COLUMNS.get(resource) or printers.COLUMNS[resource]
    table["columnDefinitions"] = columns if headers else None
    table["rows"] = rows
    return table
