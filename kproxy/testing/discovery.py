"""The discovery documents about what ``resources`` serves, in both forms kube-apiserver 1.32 serves.

* legacy: ``/api`` (``APIVersions``), ``/apis`` (``APIGroupList``), ``/apis/GROUP``
  (``APIGroup``), ``/api/v1`` and ``/apis/GROUP/VERSION`` (``APIResourceList``);
* aggregated (``apidiscovery.k8s.io/v2`` and ``v2beta1``, what kubectl 1.32 asks for
  first): ``/api`` and ``/apis`` as ``APIGroupDiscoveryList``.
"""

from __future__ import annotations

from typing import Any

from kproxy.testing.resources import GROUP_VERSIONS, ResourceType, resources_of

__all__ = ["aggregated_discovery", "api_group", "api_group_list", "api_resource_list", "api_versions", "served_group"]


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _groups() -> list[str]:
    return list(dict.fromkeys(group for group, _ in GROUP_VERSIONS if group))


def served_group(group: str) -> bool:
    return group in _groups()


def _group_entry(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_entry(g) for g in _groups()]}


def api_group(group: str) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def _legacy_entries(r: ResourceType) -> list[dict[str, Any]]:
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
    if r.stored:
        entry["storageVersionHash"] = r.storage_version_hash()
    subresources = [
        {
            "name": f"{r.name}/{sub.name}",
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": sub.kind,
            "verbs": list(sub.verbs),
        }
        for sub in r.subresources
    ]
    return [entry, *subresources]


def api_resource_list(group: str = "", version: str = "v1") -> dict[str, Any]:
    resources = [e for r in resources_of(group, version) for e in _legacy_entries(r)]
    if not group:
        return {"kind": "APIResourceList", "groupVersion": version, "resources": resources}
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}", "resources": resources}


def _aggregated_resource(r: ResourceType) -> dict[str, Any]:
    kind = {"group": r.group, "version": r.version, "kind": r.kind}
    entry: dict[str, Any] = {
        "resource": r.name,
        "responseKind": kind,
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
                "responseKind": {"group": r.group, "version": r.version, "kind": sub.kind},
                "verbs": list(sub.verbs),
            }
            for sub in r.subresources
        ]
    return entry


def aggregated_discovery(version: str, *, core: bool) -> dict[str, Any]:
    """An ``APIGroupDiscoveryList`` (``version`` is ``v2`` or ``v2beta1``) for ``/api`` or ``/apis``."""
    items: list[dict[str, Any]] = []
    for group in [""] if core else _groups():
        versions = [
            {"version": v, "resources": [_aggregated_resource(r) for r in resources_of(g, v)], "freshness": "Current"}
            for g, v in GROUP_VERSIONS
            if g == group
        ]
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if group:
            metadata = {"name": group, **metadata}
        items.append({"metadata": metadata, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
