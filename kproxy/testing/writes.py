"""The write verbs of the fake API server: create, update, patch (server-side apply too), delete.

In: the request, its resource type and the parsed query; out: kube-apiserver's answer.
The query's options are checked as kube-apiserver's ``ValidateCreateOptions`` and
friends check them (422 ``Invalid`` on ``CreateOptions.meta.k8s.io`` etc.):

* ``dryRun``: only ``All``; with it nothing is stored and the would-be object comes back
  (``kubectl diff``, ``--dry-run=server``);
* ``fieldManager``: at most 128 printable characters, required for apply; without it an
  update's manager is the ``User-Agent``'s product (``kubectl-edit``, ``python-requests``);
* ``force``: apply only;
* ``fieldValidation``: ``Ignore``, ``Warn`` (the default) or ``Strict``: what an unknown
  field in the body does (``field_validation``).

Patch bodies: merge, strategic merge, JSON patch (``patches``) and apply
(``application/apply-patch+yaml``: ``field_ownership``), which creates the object when it
does not exist (201). Every write records ``metadata.managedFields``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

import yaml
from aiohttp import web

from kproxy.testing import field_ownership, field_validation, openapi, wire
from kproxy.testing.resources import ResourceType
from kproxy.testing.status import ApiError, not_allowed
from kproxy.testing.store import Store

__all__ = ["create", "delete", "delete_collection", "patch", "update"]

Obj = dict[str, Any]
View = Callable[[Obj], Obj]

_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
_VALIDATIONS = ("Ignore", "Strict", "Warn")


def _options_error(kind: str, errors: list[tuple[str, str, str]]) -> ApiError:
    """``apierrors.NewInvalid`` on ``KIND.meta.k8s.io "" ``: (field, reason, body) per error."""
    texts = [f"{field}: {body}" for field, _, body in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    causes = [{"reason": reason, "message": body, "field": field} for field, reason, body in errors]
    return ApiError(
        422,
        "Invalid",
        f'{kind}.meta.k8s.io "" is invalid: {joined}',
        {"group": "meta.k8s.io", "kind": kind, "causes": causes},
    )


def _validate(request: web.BaseRequest, rtype: ResourceType, body: Any) -> None:
    """``fieldValidation`` (default ``Warn``): 400 for Strict, Warning headers for Warn."""
    query = parse_qs(request.query_string, keep_blank_values=True)
    directive = (query.get("fieldValidation") or ["Warn"])[-1] or "Warn"
    schema, schemas = openapi.kind_schema(rtype)
    warnings = field_validation.check(body, schema, schemas, directive)
    if warnings:
        wire.add_warnings(request, warnings)


def _options(request: web.BaseRequest, kind: str, *, apply: bool = False) -> tuple[bool, str, bool]:
    """(dry run, field manager, force) from the query, as kube-apiserver validates them."""
    query = parse_qs(request.query_string, keep_blank_values=True)
    errors: list[tuple[str, str, str]] = []
    dry_run = query.get("dryRun", [])
    if any(v != "All" for v in dry_run):
        listed = "[]string{" + ", ".join(json.dumps(v) for v in dry_run) + "}"
        errors.append(("dryRun", "FieldValueNotSupported", f'Unsupported value: {listed}: supported values: "All"'))
    manager = (query.get("fieldManager") or [""])[-1]
    if apply and not manager:
        errors.append(("fieldManager", "FieldValueRequired", "Required value: is required for apply patch"))
    if len(manager) > 128:
        errors.append(("fieldManager", "FieldValueTooLong", "Too long: may not be more than 128 bytes"))
    elif manager and not manager.isprintable():
        body = f"Invalid value: {json.dumps(manager)}: must only contain printable characters"
        errors.append(("fieldManager", "FieldValueInvalid", body))
    force_values = query.get("force", [])
    if force_values and not apply and kind == "PatchOptions":
        errors.append(("force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"))
    validation = (query.get("fieldValidation") or [""])[-1]
    if validation and validation not in _VALIDATIONS:
        supported = ", ".join(json.dumps(v) for v in _VALIDATIONS)
        body = f"Unsupported value: {json.dumps(validation)}: supported values: {supported}"
        errors.append(("fieldValidation", "FieldValueNotSupported", body))
    if errors:
        raise _options_error(kind, errors)
    if not manager:
        agent = request.headers.get("User-Agent", "")
        manager = agent.split("/", 1)[0] if agent else "unknown"
    force = (force_values or ["false"])[-1].lower() in ("1", "true", "t")
    return bool(dry_run), manager, force


def check_kind(rtype: ResourceType, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiError.bad_request("the object provided is unrecognized (must be of type map)")
    kind = body.get("kind")
    if kind and kind != rtype.kind:
        raise ApiError.bad_request(
            f'{kind} in version "{body.get("apiVersion", rtype.version)}" cannot be handled as a {rtype.kind}: '
            f'no kind "{kind}" is registered for version "{rtype.api_version}"'
        )
    return body


async def create(
    request: web.BaseRequest, store: Store, rtype: ResourceType, namespace: str | None, inbound: View
) -> Obj:
    dry_run, manager, _ = _options(request, "CreateOptions")
    raw_body = check_kind(rtype, wire.decode_body(request, await request.read()))
    _validate(request, rtype, raw_body)
    body = inbound(raw_body)
    probe = store.create(rtype.name, body, namespace, dry_run=True)  # validated, defaulted: what is stored
    field_ownership.record_update(None, probe, manager, rtype.api_version)
    body.setdefault("metadata", {})["managedFields"] = probe["metadata"]["managedFields"]
    return store.create(rtype.name, body, namespace, dry_run=dry_run)


async def update(
    request: web.BaseRequest,
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str,
    sub: str,
    inbound: View,
) -> Obj:
    dry_run, manager, _ = _options(request, "UpdateOptions")
    raw_body = check_kind(rtype, wire.decode_body(request, await request.read()))
    _validate(request, rtype, raw_body if not sub else {})
    body = inbound(raw_body)
    meta = body.setdefault("metadata", {})
    if meta.get("name") != name:
        raise ApiError.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    old = store.get(rtype.name, name, namespace)
    probe = store.update(rtype.name, body, namespace, subresource=sub, dry_run=True)
    field_ownership.record_update(old, probe, manager, rtype.api_version, sub)
    meta["managedFields"] = probe["metadata"]["managedFields"]
    return store.update(rtype.name, body, namespace, subresource=sub, dry_run=dry_run)


async def patch(
    request: web.BaseRequest,
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str,
    sub: str,
    views: tuple[View, View],
) -> tuple[Obj, int]:
    """The patched object and the status (201 when an apply created it)."""
    inbound, outbound = views
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype not in _PATCH_TYPES:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(sorted(_PATCH_TYPES)),
        )
    patch_type = _PATCH_TYPES[ctype]
    dry_run, manager, force = _options(request, "PatchOptions", apply=patch_type == "apply")
    raw = await request.read()
    if patch_type == "apply":
        return _apply(request, store, rtype, namespace, name, sub, raw, (manager, force, dry_run), views)
    body = wire.decode_body(request, raw)
    if patch_type != "json" and not sub:
        _validate(request, rtype, body)
    old = store.get(rtype.name, name, namespace)
    if patch_type != "json" and isinstance(body, dict) and rtype.group == "events.k8s.io":
        body = inbound(body)
    new = store.patch(rtype.name, name, body, namespace, patch_type=patch_type, subresource=sub, dry_run=True)
    field_ownership.record_update(old, new, manager, rtype.api_version, sub)
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    return store.update(rtype.name, new, namespace, subresource=sub, dry_run=dry_run), 200


def _apply(
    request: web.BaseRequest,
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str,
    sub: str,
    raw: bytes,
    settings: tuple[str, bool, bool],
    views: tuple[View, View],
) -> tuple[Obj, int]:
    manager, force, dry_run = settings
    inbound, _ = views
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ApiError.bad_request(f"error decoding YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ApiError.bad_request("the object provided is unrecognized (must be of type map)")
    config = check_kind(rtype, config)
    if not sub:
        _validate(request, rtype, config)
    config = inbound(config)
    meta = config.setdefault("metadata", {})
    if not isinstance(meta, dict) or meta.get("name", name) != name:
        raise ApiError.bad_request(
            f"the name of the object ({meta.get('name') if isinstance(meta, dict) else None}) does not match "
            f"the name on the URL ({name})"
        )
    meta["name"] = name
    live = store.find(rtype.name, name, namespace)
    if live is None:
        if sub:
            raise ApiError.not_found(rtype.name, name)
        created = field_ownership.apply(None, config, manager, force=force, api_version=rtype.api_version)
        return store.create(rtype.name, created, namespace, dry_run=dry_run), 201
    merged = field_ownership.apply(live, config, manager, force=force, api_version=rtype.api_version, sub=sub)
    merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    return store.update(rtype.name, merged, namespace, subresource=sub, dry_run=dry_run), 200


async def delete(request: web.BaseRequest, store: Store, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
    await request.read()  # DeleteOptions: accepted; deletion is immediate
    dry_run, _, _ = _options(request, "DeleteOptions")
    return store.delete(rtype.name, name, namespace, dry_run=dry_run)


async def delete_collection(
    request: web.BaseRequest, store: Store, rtype: ResourceType, namespace: str | None, query: Mapping[str, str]
) -> Obj:
    if "deletecollection" not in rtype.verbs:
        raise not_allowed()
    await request.read()
    dry_run, _, _ = _options(request, "DeleteOptions")
    items = store.list(
        rtype.name,
        namespace,
        label_selector=query.get("labelSelector", ""),
        field_selector=query.get("fieldSelector", ""),
    )
    deleted = []
    for item in items["items"]:
        meta = item["metadata"]
        deleted.append(store.delete(rtype.name, meta["name"], meta.get("namespace"), dry_run=dry_run))
    return {**items, "items": [{k: v for k, v in d.items() if k not in ("kind", "apiVersion")} for d in deleted]}
