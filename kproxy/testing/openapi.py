"""``/openapi/v3``: the OpenAPI v3 documents of the fake API server, one per served group version.

``/openapi/v3`` lists them (``api/v1``, ``apis/apps/v1``, ...) with a content hash in each
URL, as kube-apiserver does; ``/openapi/v3/api/v1`` and ``/openapi/v3/apis/G/V`` hold the
paths and operations of that group version's resources (with the ``fieldValidation``,
``dryRun`` and ``fieldManager`` parameters kubectl checks for) and, under
``components.schemas``, every schema its kinds reach. The schemas are data shipped with
the package (``data/openapi_schemas.json``, made by ``scripts/make_openapi_schemas.py``
from the official client's models): names as kube-apiserver's
(``io.k8s.api.core.v1.Pod``), ``x-kubernetes-group-version-kind`` on each kind, list
types and merge keys — enough for ``kubectl explain`` and kubectl's client-side
validation. ``/openapi/v2`` is not served (404): real servers send it as protobuf, and
kubectl only falls back to it when v3 is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources as package_data
from typing import Any

from kproxy.testing.resources import GROUP_VERSIONS, KUBERNETES_VERSION, ResourceType, resources_of

__all__ = ["document", "document_path", "kind_schema", "openapi_v3_index"]

_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def document_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/GROUP/VERSION``: where a group version's document lives."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _data() -> dict[str, Any]:
    text = package_data.files("kproxy.testing").joinpath("data/openapi_schemas.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _param(name: str, location: str = "query") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": location, "schema": {"type": "string", "uniqueItems": True}}
    if location == "path":
        param["required"] = True
    return param


def _operation(r: ResourceType, op_id: str, action: str, params: tuple[str, ...], schema: str) -> dict[str, Any]:
    tag = (r.group.split(".")[0] + "_" if r.group else "core_") + r.version
    operation: dict[str, Any] = {
        "tags": [tag],
        "operationId": op_id,
        "parameters": [_param(p) for p in params],
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    }
    if schema:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
        operation["responses"]["200"]["content"] = content
        if action in ("post", "put"):
            operation["requestBody"] = {"content": {"*/*": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return operation


def _kind_schema(r: ResourceType, kind: str) -> str:
    """The schema name of ``kind`` in ``r``'s group version, from the data's GVK marks."""
    for name in _data()["roots"].get(document_path(r.group, r.version), []):
        for gvk in _data()["schemas"][name].get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (r.group, r.version, kind):
                return str(name)
    return ""


def kind_schema(r: ResourceType) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the schema of ``r``'s kind or None, every schema by name): for field validation."""
    schemas: dict[str, Any] = _data()["schemas"]
    name = _kind_schema(r, r.kind)
    return (schemas[name] if name else None), schemas


def _paths(r: ResourceType) -> dict[str, Any]:
    prefix = f"/{document_path(r.group, r.version)}"
    kind, one, many = r.kind, _kind_schema(r, r.kind), _kind_schema(r, r.list_kind)
    if r.namespaced:
        base, scope, infix = f"{prefix}/namespaces/{{namespace}}/{r.name}", [_param("namespace", "path")], "Namespaced"
    else:
        base, scope, infix = f"{prefix}/{r.name}", [], ""
    if not r.stored:  # the reviews: create only
        return {base: {"parameters": scope, "post": _operation(r, f"create{kind}", "post", _WRITE_PARAMS, one)}}
    paths = {
        base: {
            "parameters": scope,
            "get": _operation(r, f"list{infix}{kind}", "list", ("labelSelector", "fieldSelector", "limit"), many),
            "post": _operation(r, f"create{infix}{kind}", "post", _WRITE_PARAMS, one),
        },
        base + "/{name}": {
            "parameters": [*scope, _param("name", "path")],
            "get": _operation(r, f"read{infix}{kind}", "get", ("pretty",), one),
            "put": _operation(r, f"replace{infix}{kind}", "put", _WRITE_PARAMS, one),
            "patch": _operation(r, f"patch{infix}{kind}", "patch", (*_WRITE_PARAMS, "force"), one),
            "delete": _operation(r, f"delete{infix}{kind}", "delete", ("dryRun", "gracePeriodSeconds"), ""),
        },
    }
    if any(sub.name == "status" for sub in r.subresources):
        paths[base + "/{name}/status"] = {
            "parameters": [*scope, _param("name", "path")],
            "get": _operation(r, f"read{infix}{kind}Status", "get", ("pretty",), one),
            "put": _operation(r, f"replace{infix}{kind}Status", "put", _WRITE_PARAMS, one),
            "patch": _operation(r, f"patch{infix}{kind}Status", "patch", (*_WRITE_PARAMS, "force"), one),
        }
    return paths


def _closure(names: list[str]) -> dict[str, Any]:
    """The schemas ``names`` reach through ``$ref``, themselves included."""
    schemas: dict[str, Any] = _data()["schemas"]
    found: dict[str, Any] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in found or name not in schemas:
            continue
        found[name] = schemas[name]
        text = json.dumps(schemas[name])
        pending.extend(ref.split('"', 1)[0] for ref in text.split('"$ref": "#/components/schemas/')[1:])
    return dict(sorted(found.items()))


@functools.cache
def document(group: str, version: str) -> dict[str, Any]:
    """The document of one served group version: paths, operations and schemas."""
    paths: dict[str, Any] = {}
    for r in resources_of(group, version):
        paths.update(_paths(r))
    schemas = _closure(list(_data()["roots"].get(document_path(group, version), [])))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.cache
def _hash(group: str, version: str) -> str:
    data = json.dumps(document(group, version), sort_keys=True).encode()
    return hashlib.sha512(data).hexdigest()[:128].upper()


def openapi_v3_index() -> dict[str, Any]:
    """``/openapi/v3``: where each group version's document lives, with a content hash."""
    paths = {}
    for group, version in GROUP_VERSIONS:
        where = document_path(group, version)
        paths[where] = {"serverRelativeURL": f"/openapi/v3/{where}?hash={_hash(group, version)}"}
    return {"paths": paths}
