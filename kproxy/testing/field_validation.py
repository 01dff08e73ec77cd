"""Server-side field validation (``fieldValidation``): unknown fields, found with the OpenAPI schemas.

In: a body as written (a create's or update's object, a patch, an applied
configuration) and its kind's schema from ``openapi``; out: the unknown fields' paths,
in document order (``spec.contaners``, ``spec.containers[0].imagee``). What the request
asked decides what happens, as in kube-apiserver:

* ``Strict`` (what kubectl sends by default): 400 ``BadRequest``,
  ``strict decoding error: unknown field "spec.contaners"`` (several joined by ``, ``);
* ``Warn`` (the default when nothing is asked): the write goes through, with a
  ``Warning: 299 - "unknown field \\"spec.contaners\\""`` header per field;
* ``Ignore``: nothing.

Fields of ``x-kubernetes-preserve-unknown-fields`` objects and of maps
(``additionalProperties``) are free; JSON patches are not checked.
"""

from __future__ import annotations

from typing import Any

from kproxy.testing.status import ApiError

__all__ = ["check", "unknown_fields"]

Obj = dict[str, Any]
_TOP_FREE = ("apiVersion", "kind")


def _resolve(schema: Obj, schemas: Obj) -> Obj:
    while True:
        if "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def unknown_fields(value: Any, schema: Obj, schemas: Obj, path: str = "") -> list[str]:
    """The paths of the fields ``value`` has and ``schema`` does not know."""
    schema = _resolve(schema, schemas)
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key.startswith("$") or (not path and key in _TOP_FREE):
                continue  # strategic merge patch directives; the type meta
            if key not in properties:
                found.append(where)
            else:
                found.extend(unknown_fields(item, properties[key], schemas, where))
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found.extend(unknown_fields(item, schema["additionalProperties"], schemas, f"{path}.{key}"))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found.extend(unknown_fields(item, schema["items"], schemas, f"{path}[{index}]"))
    return found


def check(body: Any, schema: Obj | None, schemas: Obj, directive: str) -> list[str]:
    """Raise kube-apiserver's 400 for ``Strict``; else the warnings to send (none for ``Ignore``)."""
    if schema is None or directive == "Ignore" or not isinstance(body, dict):
        return []
    unknown = unknown_fields(body, schema, schemas)
    if not unknown:
        return []
    if directive == "Strict":
        raise ApiError.bad_request("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
    return [f'unknown field "{p}"' for p in unknown]
