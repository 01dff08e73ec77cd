"""Events the fake cluster's components report, as ``kubectl events`` and ``describe`` show them.

In: an object and what happened to it; out: a core ``v1`` Event in the object's
namespace (``NAME.HEX`` as client-go's recorder names them, ``count`` 1, both the legacy
``source`` and the ``reporting*`` fields). The controllers report ``ScalingReplicaSet``
(deployment-controller), ``SuccessfulCreate``/``SuccessfulDelete``
(replicaset-controller); a new pod gets kubelet's ``Scheduled``, ``Pulled``,
``Created`` and ``Started``.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from kproxy.testing.objects import NODE_NAME
from kproxy.testing.store import Store

__all__ = ["record", "record_pod_start"]

Obj = dict[str, Any]


_last = 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _nanos() -> int:
    """client-go's event names end in the time in nanoseconds, in hex; strictly increasing here."""
    global _last
    _last = max(time.time_ns(), _last + 1)
    return _last


def record(
    store: Store, obj: Obj, reason: str, message: str, component: str, *, kind_type: str = "Normal", when: str = ""
) -> None:
    meta = obj["metadata"]
    stamp = when or _now().strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", "default"),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", "v1"),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if obj.get("kind") == "Pod" and reason in ("Pulled", "Created", "Started"):
        containers = obj.get("spec", {}).get("containers") or [{}]
        involved["fieldPath"] = f"spec.containers{{{containers[0].get('name', '')}}}"
    event = {
        "metadata": {"name": f"{meta['name']}.{_nanos():x}", "namespace": involved["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": NODE_NAME} if component == "kubelet" else {})},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": kind_type,
        "eventTime": None,  # written through the legacy API, as kubelet and the controllers still do
        "reportingComponent": component,
        "reportingInstance": NODE_NAME if component == "kubelet" else "",
    }
    store.create("events", event, involved["namespace"])


def record_pod_start(store: Store, pod: Obj, when: str = "") -> None:
    """What the scheduler and the kubelet report when a pod starts."""
    meta = pod["metadata"]
    where = f"{meta.get('namespace', 'default')}/{meta['name']}"
    record(store, pod, "Scheduled", f"Successfully assigned {where} to {NODE_NAME}", "default-scheduler", when=when)
    for container in pod.get("spec", {}).get("containers") or []:
        image = container.get("image", "")
        name = container.get("name", "")
        present = f'Container image "{image}" already present on machine'
        record(store, pod, "Pulled", present, "kubelet", when=when)
        record(store, pod, "Created", f"Created container: {name}", "kubelet", when=when)
        record(store, pod, "Started", f"Started container {name}", "kubelet", when=when)
