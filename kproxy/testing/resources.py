"""What the fake API server serves: its resource types and the discovery documents about them.

The core group ``v1`` only (``/apis`` lists no groups), with the resources kubectl and
kproxy's tests touch: namespaces, nodes, pods, services, configmaps and the pod, service
and node subresources (exec, attach, portforward, log, proxy, status). Verbs, kinds,
short names and categories are copied from kube-apiserver 1.32.

Discovery comes in both forms kube-apiserver 1.32 serves:

* legacy: ``/api`` (``APIVersions``), ``/apis`` (``APIGroupList``), ``/api/v1``
  (``APIResourceList``);
* aggregated (``apidiscovery.k8s.io/v2`` and ``v2beta1``, what kubectl 1.32 asks for
  first): ``/api`` and ``/apis`` as ``APIGroupDiscoveryList``.

``/openapi/v3`` and ``/openapi/v3/api/v1`` describe the paths and operations only, with
no schemas: enough for kubectl's check that the server supports server-side field
validation (it looks for a ``fieldValidation`` parameter on the PATCH operation carrying
the kind's ``x-kubernetes-group-version-kind``), not enough for ``kubectl explain`` or
client-side strategic-merge ``apply``. ``/openapi/v2`` is not served (404): real servers
send it as protobuf, and kubectl only falls back to it when v3 is missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KUBERNETES_VERSION",
    "RESOURCES",
    "ResourceType",
    "aggregated_discovery",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "openapi_v3_core",
    "openapi_v3_index",
    "resource_by_name",
    "version_info",
]

KUBERNETES_VERSION = "v1.32.4"

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_PROXY_VERBS = ("create", "delete", "get", "patch", "update")
_STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class ResourceType:
    """One resource of the core ``v1`` API."""

    name: str  # plural, as in URLs
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def storage_version_hash(self) -> str:
        # kube-apiserver publishes an opaque hash of the storage version; any stable value works.
        digest = hashlib.sha256(f"/v1, Kind={self.kind}".encode()).digest()
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
)

_BY_NAME = {r.name: r for r in RESOURCES}


def resource_by_name(name: str) -> ResourceType | None:
    return _BY_NAME.get(name)


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


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}


def api_resource_list() -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for r in RESOURCES:
        entry: dict[str, Any] = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        entry["storageVersionHash"] = r.storage_version_hash()
        resources.append(entry)
        for sub in r.subresources:
            resources.append(
                {
                    "name": f"{r.name}/{sub.name}",
                    "singularName": r.singular,
                    "namespaced": r.namespaced,
                    "kind": sub.kind,
                    "verbs": list(sub.verbs),
                }
            )
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def aggregated_discovery(version: str, *, core: bool) -> dict[str, Any]:
    """An ``APIGroupDiscoveryList`` (``version`` is ``v2`` or ``v2beta1``) for ``/api`` or ``/apis``."""
    items: list[dict[str, Any]] = []
    if core:
        resources: list[dict[str, Any]] = []
        for r in RESOURCES:
            entry: dict[str, Any] = {
                "resource": r.name,
                "responseKind": {"group": "", "version": "v1", "kind": r.kind},
                "scope": "Namespaced" if r.namespaced else "Cluster",
                "singularResource": r.singular,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            if r.subresources:
                entry["subresources"] = [
                    {
                        "subresource": sub.name,
                        "responseKind": {"group": "", "version": "v1", "kind": sub.kind},
                        "verbs": list(sub.verbs),
                    }
                    for sub in r.subresources
                ]
            resources.append(entry)
        items.append(
            {
                "metadata": {"creationTimestamp": None},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def _gvk(kind: str) -> dict[str, str]:
    return {"group": "", "version": "v1", "kind": kind}


def _param(name: str, location: str = "query") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": location, "schema": {"type": "string", "uniqueItems": True}}
    if location == "path":
        param["required"] = True
    return param


_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _operation(op_id: str, kind: str, action: str, params: tuple[str, ...]) -> dict[str, Any]:
    return {
        "tags": ["core_v1"],
        "operationId": op_id,
        "parameters": [_param(p) for p in params],
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(kind),
    }


def openapi_v3_core() -> dict[str, Any]:
    """The ``/openapi/v3/api/v1`` document: paths and operations, no schemas."""
    paths: dict[str, Any] = {}
    for r in RESOURCES:
        kind = r.kind
        if r.namespaced:
            base = f"/api/v1/namespaces/{{namespace}}/{r.name}"
            scope_params = [_param("namespace", "path")]
            infix = "Namespaced"
        else:
            base = f"/api/v1/{r.name}"
            scope_params = []
            infix = ""
        paths[base] = {
            "parameters": scope_params,
            "get": _operation(f"list{infix}{kind}", kind, "list", ("labelSelector", "fieldSelector", "limit")),
            "post": _operation(f"create{infix}{kind}", kind, "post", _WRITE_PARAMS),
        }
        paths[base + "/{name}"] = {
            "parameters": [*scope_params, _param("name", "path")],
            "get": _operation(f"read{infix}{kind}", kind, "get", ("pretty",)),
            "put": _operation(f"replace{infix}{kind}", kind, "put", _WRITE_PARAMS),
            "patch": _operation(f"patch{infix}{kind}", kind, "patch", (*_WRITE_PARAMS, "force")),
            "delete": _operation(f"delete{infix}{kind}", kind, "delete", ("dryRun", "gracePeriodSeconds")),
        }
        for sub in r.subresources:
            if sub.name != "status":
                continue
            paths[base + "/{name}/status"] = {
                "parameters": [*scope_params, _param("name", "path")],
                "get": _operation(f"read{infix}{kind}Status", kind, "get", ("pretty",)),
                "put": _operation(f"replace{infix}{kind}Status", kind, "put", _WRITE_PARAMS),
                "patch": _operation(f"patch{infix}{kind}Status", kind, "patch", (*_WRITE_PARAMS, "force")),
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _document_hash(document: dict[str, Any]) -> str:
    data = json.dumps(document, sort_keys=True).encode()
    return hashlib.sha512(data).hexdigest()[:128].upper()


CORE_OPENAPI_HASH = _document_hash(openapi_v3_core())


def openapi_v3_index() -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document lives, with a content hash."""
    return {"paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={CORE_OPENAPI_HASH}"}}}
