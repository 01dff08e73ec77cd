"""``/openapi/v3``: the OpenAPI v3 documents of the fake API server.

``/openapi/v3/api/v1`` describes the paths and operations only, with no schemas: enough
for kubectl's check that the server supports server-side field validation (it looks for
a ``fieldValidation`` parameter on the PATCH operation carrying the kind's
``x-kubernetes-group-version-kind``), not enough for ``kubectl explain`` or client-side
strategic-merge ``apply``. ``/openapi/v2`` is not served (404): real servers send it as
protobuf, and kubectl only falls back to it when v3 is missing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kproxy.testing.resources import KUBERNETES_VERSION, resources_of

__all__ = ["openapi_v3_core", "openapi_v3_index"]


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
    for r in resources_of("", "v1"):
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
