"""Per-kind rules of the fake API server: validation and defaulting.

Validation covers what kubectl users meet first: names must be RFC 1123 (422
``Invalid`` with kube-apiserver's wording), pods need containers, services need ports.
Defaulting fills in what kube-apiserver, the scheduler and the kubelet would: a pod is
scheduled onto ``demo-node`` and reported ``Running`` and ready at once (there is no
``Pending`` phase and nothing actually runs); a service gets a cluster IP from
10.96.0.0/12; a namespace is ``Active``; a secret is ``Opaque`` with its ``stringData``
folded into ``data``; a Deployment or ReplicaSet gets one replica and kube's rollout
defaults (the controllers in ``controllers`` then act on them).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from kproxy.testing.resources import KUBERNETES_VERSION, ResourceType
from kproxy.testing.status import ApiError

__all__ = ["NODE_IP", "NODE_NAME", "Allocator", "default", "validate"]

Obj = dict[str, Any]

NODE_NAME = "demo-node"
NODE_IP = "10.0.0.10"

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# Namespaces and services are named by DNS labels; the others by DNS subdomains.
_LABEL_NAMED = frozenset({"namespaces", "services"})


@dataclass
class Allocator:
    """Hands out pod and cluster IPs, in order."""

    next_pod: int = 10
    next_service: int = 100
    next_node_port: int = 0
    used_cluster_ips: set[str] = field(default_factory=lambda: {"10.96.0.1", "10.96.0.10"})

    def pod_ip(self) -> str:
        self.next_pod += 1
        return f"10.244.0.{self.next_pod % 250 + 2}"

    def node_port(self) -> int:
        self.next_node_port += 1
        return 30000 + self.next_node_port % 2768

    def cluster_ip(self) -> str:
        while True:
            self.next_service += 1
            ip = f"10.96.{self.next_service // 250}.{self.next_service % 250 + 2}"
            if ip not in self.used_cluster_ips:
                self.used_cluster_ips.add(ip)
                return ip


def _invalid(kind: str, name: str, field_path: str, reason: str, detail: str) -> Exception:
    message = f'{kind} "{name}" is invalid: {field_path}: {detail}'
    cause = {"reason": reason, "message": detail, "field": field_path}
    return ApiError(422, "Invalid", message, {"name": name, "kind": kind, "causes": [cause]})


def validate(rtype: ResourceType, obj: Obj) -> None:
    """Raise a 422 ``Invalid`` ApiError for what kube-apiserver would reject first."""
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not isinstance(name, str) or not name:
        raise _invalid(
            rtype.kind,
            "",
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required",
        )
    pattern, help_text = (
        (_DNS1123_LABEL, _LABEL_HELP) if rtype.name in _LABEL_NAMED else (_DNS1123_SUBDOMAIN, _SUBDOMAIN_HELP)
    )
    if len(name) > (63 if rtype.name in _LABEL_NAMED else 253) or not pattern.match(name):
        raise _invalid(rtype.kind, name, "metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {help_text}')
    spec: Obj = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    if rtype.name == "pods":
        containers = spec.get("containers")
        if not containers or not isinstance(containers, list):
            raise _invalid(rtype.kind, name, "spec.containers", "FieldValueRequired", "Required value")
        for i, container in enumerate(containers):
            if not isinstance(container, dict) or not container.get("name"):
                raise _invalid(rtype.kind, name, f"spec.containers[{i}].name", "FieldValueRequired", "Required value")
            if not container.get("image"):
                raise _invalid(rtype.kind, name, f"spec.containers[{i}].image", "FieldValueRequired", "Required value")
    if rtype.name in ("deployments", "replicasets"):
        if not isinstance(spec.get("selector"), dict) or not spec["selector"]:
            raise _invalid(rtype.kind, name, "spec.selector", "FieldValueRequired", "Required value")
        template: Obj = spec["template"] if isinstance(spec.get("template"), dict) else {}
        containers = (template.get("spec") or {}).get("containers")
        if not containers:
            field_path = "spec.template.spec.containers"
            raise _invalid(rtype.kind, name, field_path, "FieldValueRequired", "Required value")
        labels = (template.get("metadata") or {}).get("labels") or {}
        wanted = spec["selector"].get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            detail = f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"
            raise _invalid(rtype.kind, name, "spec.template.metadata.labels", "FieldValueInvalid", detail)
    headless_or_external = spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None"
    if rtype.name == "services" and not headless_or_external and not spec.get("ports"):
        raise _invalid(rtype.kind, name, "spec.ports", "FieldValueRequired", "Required value")


def _prune_empty_maps(obj: Obj) -> None:
    """Go's ``omitempty``: an empty labels, annotations or data map is not stored."""
    meta = obj.get("metadata") or {}
    for key in ("labels", "annotations", "ownerReferences", "finalizers"):
        if key in meta and not meta[key]:
            del meta[key]
    for key in ("data", "binaryData"):
        if key in obj and obj[key] in ({}, None):
            del obj[key]


def default(rtype: ResourceType, obj: Obj, alloc: Allocator, *, created: str, old: Obj | None = None) -> None:
    """Fill in defaults in place, as kube-apiserver, scheduler and kubelet together would."""
    _prune_empty_maps(obj)
    if rtype.name == "namespaces":
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})
    elif rtype.name == "pods":
        _default_pod(obj, alloc, created, old)
    elif rtype.name == "services":
        _default_service(obj, alloc, old)
    elif rtype.name == "nodes":
        obj.setdefault("spec", {})
        obj.setdefault("status", _node_status(created, obj["metadata"]["name"]))
    elif rtype.name == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data: Obj = obj.setdefault("data", {}) if string_data else {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    elif rtype.name in ("deployments", "replicasets"):
        _default_workload(rtype.name, obj, alloc, created)


def _go_map(labels: dict[str, str]) -> str:
    """Go's %v of a map[string]string: ``map[a:b c:d]``, keys sorted."""
    return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(labels.items())) + "]"


def _default_workload(resource: str, obj: Obj, alloc: Allocator, created: str) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if resource == "deployments":
        spec.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    pod_spec = template.setdefault("spec", {})
    for key, value in _POD_SPEC_DEFAULTS:
        if key not in ("nodeName", "serviceAccountName", "serviceAccount", "enableServiceLinks", "priority"):
            pod_spec.setdefault(key, value)
    _default_containers(pod_spec)
    obj.setdefault("status", {})


_POD_SPEC_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("restartPolicy", "Always"),
    ("terminationGracePeriodSeconds", 30),
    ("dnsPolicy", "ClusterFirst"),
    ("serviceAccountName", "default"),
    ("serviceAccount", "default"),
    ("securityContext", {}),
    ("schedulerName", "default-scheduler"),
    ("nodeName", NODE_NAME),
    ("enableServiceLinks", True),
    ("preemptionPolicy", "PreemptLowerPriority"),
    ("priority", 0),
)


def _default_containers(spec: Obj) -> None:
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def _default_pod(obj: Obj, alloc: Allocator, created: str, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in _POD_SPEC_DEFAULTS:
        spec.setdefault(key, value)
    _default_containers(spec)
    if old is not None:
        return
    pod_ip = alloc.pod_ip()
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": created}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    obj["status"] = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": created,
        "containerStatuses": [
            {
                "name": c.get("name"),
                "state": {"running": {"startedAt": created}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c.get("image"),
                "imageID": f"docker.io/library/{c.get('image')}@sha256:" + "0" * 64,
                "containerID": "containerd://" + hashlib.sha256(f"{pod_ip}/{c.get('name')}".encode()).hexdigest(),
                "started": True,
            }
            for c in spec.get("containers", [])
        ],
        "qosClass": "BestEffort",
    }


def _default_service(obj: Obj, alloc: Allocator, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        if old is not None and not spec.get("clusterIP"):
            spec["clusterIP"] = old.get("spec", {}).get("clusterIP")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = alloc.cluster_ip()
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            port["nodePort"] = alloc.node_port()
    obj.setdefault("status", {"loadBalancer": {}})


def _node_status(created: str, name: str) -> Obj:
    return {
        "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": NODE_NAME}],
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": created,
                "lastTransitionTime": created,
            }
        ],
        "nodeInfo": {
            "architecture": "amd64",
            "containerRuntimeVersion": "containerd://1.7.24",
            "kernelVersion": "6.1.0",
            "kubeProxyVersion": KUBERNETES_VERSION,
            "kubeletVersion": KUBERNETES_VERSION,
            "operatingSystem": "linux",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            # Stable per node name, like the ones a kubelet reads from the machine.
            "machineID": hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(),
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + ".system")),
            "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + ".boot")),
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }


def with_ephemeral_containers(old: Obj, obj: Obj) -> Obj:
    """``pods/NAME/ephemeralcontainers``: only ``spec.ephemeralContainers`` changes (they may only be
    added), and each new one is at once running, as ``kubectl debug`` waits for."""
    wanted = (obj.get("spec") or {}).get("ephemeralContainers") or []
    new = copy.deepcopy(old)
    name = old["metadata"]["name"]
    before = {c.get("name") for c in (old.get("spec") or {}).get("ephemeralContainers") or []}
    if not before <= {c.get("name") for c in wanted if isinstance(c, dict)}:
        raise _invalid(
            "Pod",
            name,
            "spec.ephemeralContainers",
            "FieldValueForbidden",
            "Forbidden: existing ephemeral containers may not be removed",
        )
    for i, container in enumerate(wanted):
        if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
            raise _invalid("Pod", name, f"spec.ephemeralContainers[{i}]", "FieldValueRequired", "Required value")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("resources", {})
    new.setdefault("spec", {})["ephemeralContainers"] = wanted
    started = (old.get("metadata") or {}).get("creationTimestamp")
    new.setdefault("status", {})["ephemeralContainerStatuses"] = [
        {
            "name": c["name"],
            "state": {"running": {"startedAt": started}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": c["image"],
            "imageID": "",
            "containerID": "containerd://" + hashlib.sha256(f"{name}/{c['name']}".encode()).hexdigest(),
        }
        for c in wanted
    ]
    return new
