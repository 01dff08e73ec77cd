"""What the fake API server serves: its API groups and resource types.

The core group ``v1`` (namespaces, nodes, pods, services, endpoints, configmaps,
secrets, serviceaccounts, events), ``apps/v1`` (deployments, replicasets),
``discovery.k8s.io/v1`` (endpointslices), ``events.k8s.io/v1`` (events: the core
events seen through the newer API), ``authentication.k8s.io/v1`` (``selfsubjectreviews``:
``kubectl auth whoami``) and ``authorization.k8s.io/v1`` (``selfsubjectaccessreviews``
and ``selfsubjectrulesreviews``: ``kubectl auth can-i``). Verbs, kinds, short names and
categories are copied from kube-apiserver 1.32. ``discovery`` publishes them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

__all__ = [
    "GROUP_VERSIONS",
    "KUBERNETES_VERSION",
    "RESOURCES",
    "ResourceType",
    "Subresource",
    "resource_by_name",
    "resource_in",
    "resources_of",
    "version_info",
]

KUBERNETES_VERSION = "v1.32.4"

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_PROXY_VERBS = ("create", "delete", "get", "patch", "update")
_STATUS_VERBS = ("get", "patch", "update")
_CREATE_ONLY = ("create",)

# Served (group, version) pairs, in the order kube-apiserver lists them ("" is the core group).
GROUP_VERSIONS: tuple[tuple[str, str], ...] = (
    ("", "v1"),
    ("apps", "v1"),
    ("events.k8s.io", "v1"),
    ("authentication.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("discovery.k8s.io", "v1"),
)


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class ResourceType:
    """One resource of a served group version."""

    name: str  # plural, as in URLs
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    group: str = ""
    version: str = "v1"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def api_version(self) -> str:
        """``v1`` or ``GROUP/VERSION``, as in an object's ``apiVersion``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stored(self) -> bool:
        """False for the reviews, which are answered and never kept."""
        return self.verbs != _CREATE_ONLY

    def storage_version_hash(self) -> str:
        # kube-apiserver publishes an opaque hash of the storage version; any stable value works.
        digest = hashlib.sha256(f"{self.group}/{self.version}, Kind={self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("configmaps", "configmap", "ConfigMap", True, _ALL_VERBS, ("cm",)),
    ResourceType(
        "namespaces",
        "namespace",
        "Namespace",
        False,
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("ns",),
        (),
        (
            Subresource("finalize", "Namespace", ("update",)),
            Subresource("status", "Namespace", _STATUS_VERBS),
        ),
    ),
    ResourceType(
        "nodes",
        "node",
        "Node",
        False,
        _ALL_VERBS,
        ("no",),
        (),
        (
            Subresource("proxy", "NodeProxyOptions", _PROXY_VERBS),
            Subresource("status", "Node", _STATUS_VERBS),
        ),
    ),
    ResourceType(
        "pods",
        "pod",
        "Pod",
        True,
        _ALL_VERBS,
        ("po",),
        ("all",),
        (
            Subresource("attach", "PodAttachOptions", ("create", "get")),
            Subresource("ephemeralcontainers", "Pod", _STATUS_VERBS),
            Subresource("exec", "PodExecOptions", ("create", "get")),
            Subresource("log", "Pod", ("get",)),
            Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
            Subresource("proxy", "PodProxyOptions", _PROXY_VERBS),
            Subresource("status", "Pod", _STATUS_VERBS),
        ),
    ),
    ResourceType(
        "services",
        "service",
        "Service",
        True,
        _ALL_VERBS,
        ("svc",),
        ("all",),
        (
            Subresource("proxy", "ServiceProxyOptions", _PROXY_VERBS),
            Subresource("status", "Service", _STATUS_VERBS),
        ),
    ),
    ResourceType("endpoints", "endpoints", "Endpoints", True, _ALL_VERBS, ("ep",)),
    ResourceType("events", "event", "Event", True, _ALL_VERBS, ("ev",)),
    ResourceType("secrets", "secret", "Secret", True, _ALL_VERBS),
    ResourceType(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        True,
        _ALL_VERBS,
        ("sa",),
        (),
        (Subresource("token", "TokenRequest", ("create",)),),
    ),
    ResourceType(
        "deployments",
        "deployment",
        "Deployment",
        True,
        _ALL_VERBS,
        ("deploy",),
        ("all",),
        (
            Subresource("scale", "Scale", _STATUS_VERBS),
            Subresource("status", "Deployment", _STATUS_VERBS),
        ),
        group="apps",
    ),
    ResourceType(
        "replicasets",
        "replicaset",
        "ReplicaSet",
        True,
        _ALL_VERBS,
        ("rs",),
        ("all",),
        (
            Subresource("scale", "Scale", _STATUS_VERBS),
            Subresource("status", "ReplicaSet", _STATUS_VERBS),
        ),
        group="apps",
    ),
    ResourceType("endpointslices", "endpointslice", "EndpointSlice", True, _ALL_VERBS, group="discovery.k8s.io"),
    ResourceType("events", "event", "Event", True, _ALL_VERBS, ("ev",), group="events.k8s.io"),
    ResourceType(
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        False,
        _CREATE_ONLY,
        group="authentication.k8s.io",
    ),
    ResourceType(
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        False,
        _CREATE_ONLY,
        group="authorization.k8s.io",
    ),
    ResourceType(
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        "SelfSubjectRulesReview",
        False,
        _CREATE_ONLY,
        group="authorization.k8s.io",
    ),
)

# The store keeps each resource once, by plural: events.k8s.io's events are the core ones.
_BY_NAME = {r.name: r for r in reversed(RESOURCES) if r.stored}
_BY_GROUP_VERSION = {(r.group, r.version, r.name): r for r in RESOURCES}


def resource_by_name(name: str) -> ResourceType | None:
    """A stored resource by its plural (``pods``, ``configmaps``), whatever its group."""
    return _BY_NAME.get(name)


def resource_in(group: str, version: str, name: str) -> ResourceType | None:
    """The resource ``name`` of ``group/version``, if served."""
    return _BY_GROUP_VERSION.get((group, version, name))


def resources_of(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if (r.group, r.version) == (group, version)]


def version_info() -> dict[str, str]:
    """``/version``, shaped like kube-apiserver 1.32.4's (the commit and date are illustrative)."""
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T15:59:48Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
