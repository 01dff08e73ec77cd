"""Per-kind rules of the fake API server: validation, defaulting, patches, the seed cluster.

Validation covers what kubectl users meet first: names must be RFC 1123 (422
``Invalid`` with kube-apiserver's wording), pods need containers, services need ports.
Defaulting fills in what kube-apiserver, the scheduler and the kubelet would: a pod is
scheduled onto ``demo-node`` and reported ``Running`` and ready at once (there is no
``Pending`` phase and nothing actually runs); a service gets a cluster IP from
10.96.0.0/12; a namespace is ``Active``.

Patches: JSON merge patch (RFC 7386), used for strategic merge patch too (so list
merges by key are not done: a strategic patch replaces lists), and JSON patch (RFC 6902).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kproxy.testing.resources import KUBERNETES_VERSION, ResourceType
from kproxy.testing.status import ApiError

__all__ = ["Allocator", "default", "json_patch", "merge_patch", "seed_objects", "validate"]

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
_SEED_NAMESPACES = ("default", "kube-system", "kube-public")


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
    headless_or_external = spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None"
    if rtype.name == "services" and not headless_or_external and not spec.get("ports"):
        raise _invalid(rtype.kind, name, "spec.ports", "FieldValueRequired", "Required value")


def default(rtype: ResourceType, obj: Obj, alloc: Allocator, *, created: str, old: Obj | None = None) -> None:
    """Fill in defaults in place, as kube-apiserver, scheduler and kubelet together would."""
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
        obj.setdefault("status", _node_status(created))


def _default_pod(obj: Obj, alloc: Allocator, created: str, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    for key, value in (
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
    ):
        spec.setdefault(key, value)
    for container in spec.get("containers", []):
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        container.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") else "IfNotPresent")
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
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


def _node_status(created: str) -> Obj:
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
        },
    }


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


def seed_objects(now: datetime.datetime, ca_pem: bytes | None) -> list[tuple[str, Obj]]:
    """The demo cluster: (resource, object) pairs in creation order, with ages that look lived-in."""

    def ago(days: float) -> str:
        return (now - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    boot = ago(12)
    return [
        *_seed_namespaces_and_node(boot),
        *_seed_configmaps(boot, ago(3), ca_pem),
        *_seed_services(boot, ago(2)),
        *_seed_pods(boot, ago),
    ]


def _seed_namespaces_and_node(boot: str) -> list[tuple[str, Obj]]:
    """The namespaces of a fresh cluster, and its one control-plane node."""
    out: list[tuple[str, Obj]] = [
        ("namespaces", {"metadata": {"name": ns, "creationTimestamp": boot}}) for ns in _SEED_NAMESPACES
    ]
    node_labels = {
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/control-plane": "",
    }
    out.append(("nodes", {"metadata": {"name": NODE_NAME, "creationTimestamp": boot, "labels": node_labels}}))
    return out


def _seed_configmaps(boot: str, created: str, ca_pem: bytes | None) -> list[tuple[str, Obj]]:
    """``kube-root-ca.crt`` in every namespace (kube-controller-manager publishes it), and
    the demo's own configmap."""
    root_ca = (ca_pem or b"").decode()
    out: list[tuple[str, Obj]] = [
        (
            "configmaps",
            {
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "creationTimestamp": boot},
                "data": {"ca.crt": root_ca},
            },
        )
        for ns in _SEED_NAMESPACES
    ]
    demo = {
        "metadata": {"name": "demo-config", "namespace": "default", "creationTimestamp": created},
        "data": {"greeting": "hello from kproxy's demo cluster", "replicas": "2"},
    }
    out.append(("configmaps", demo))
    return out


def _seed_services(boot: str, nginx_created: str) -> list[tuple[str, Obj]]:
    """``kubernetes`` and ``kube-dns`` as every cluster has them, and the demo's nginx."""
    kubernetes = {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "creationTimestamp": boot,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": "10.96.0.1",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    kube_dns = {
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "creationTimestamp": boot,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
        },
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    nginx = {
        "metadata": {
            "name": "nginx",
            "namespace": "default",
            "creationTimestamp": nginx_created,
            "labels": {"app": "nginx"},
        },
        "spec": {"selector": {"app": "nginx"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]},
    }
    return [("services", kubernetes), ("services", kube_dns), ("services", nginx)]


def _seed_pods(boot: str, ago: Callable[[float], str]) -> list[tuple[str, Obj]]:
    """CoreDNS, and the two replicas of the demo's nginx behind the ``nginx`` service."""
    coredns = {
        "metadata": {
            "name": "coredns-668d6bf9bc-7xk2p",
            "namespace": "kube-system",
            "creationTimestamp": boot,
            "labels": {"k8s-app": "kube-dns", "pod-template-hash": "668d6bf9bc"},
        },
        "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3"}]},
    }
    out: list[tuple[str, Obj]] = [("pods", coredns)]
    for suffix, age in (("2xkqw", 2.0), ("8hvzn", 1.5)):
        nginx = {
            "metadata": {
                "name": f"nginx-7c5ddbdf54-{suffix}",
                "namespace": "default",
                "creationTimestamp": ago(age),
                "labels": {"app": "nginx", "pod-template-hash": "7c5ddbdf54"},
            },
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    }
                ]
            },
        }
        out.append(("pods", nginx))
    return out
