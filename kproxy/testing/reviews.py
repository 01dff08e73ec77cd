"""The self-reviews: who am I, and may I? (``kubectl auth whoami``, ``kubectl auth can-i``).

* ``authentication.k8s.io/v1 SelfSubjectReview``: the user the request runs as, after
  impersonation: username, uid, groups (``system:authenticated`` included) and extra.
* ``authorization.k8s.io/v1 SelfSubjectAccessReview``: ``status.allowed`` for the
  ``spec.resourceAttributes`` or ``spec.nonResourceAttributes`` asked, by the fake's
  :class:`~kproxy.testing.authorization.Authorizer`; RBAC gives no reason for a denial,
  and neither does the fake (kubectl then prints a bare ``no``).
* ``authorization.k8s.io/v1 SelfSubjectRulesReview`` (``kubectl auth can-i --list``):
  the rules that apply to the user in ``spec.namespace``.

All three answer ``201 Created`` with the review and store nothing, as kube-apiserver.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kproxy.testing import wire
from kproxy.testing.auth import UserInfo
from kproxy.testing.authorization import Attributes, Authorizer, Rule
from kproxy.testing.resources import ResourceType
from kproxy.testing.status import ApiError

__all__ = ["handle_review"]


async def handle_review(
    request: web.BaseRequest, rtype: ResourceType, user: UserInfo, authorizer: Authorizer
) -> web.Response:
    if request.method != "POST":
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    body = wire.decode_body(request, await request.read())
    if not isinstance(body, dict):
        raise ApiError.bad_request("the object provided is unrecognized (must be of type map)")
    kind = body.get("kind")
    if kind and kind != rtype.kind:
        raise ApiError.bad_request(
            f'{kind} in version "{body.get("apiVersion", "")}" cannot be handled as a {rtype.kind}: '
            f'no kind "{kind}" is registered for version "{rtype.api_version}"'
        )
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if rtype.kind == "SelfSubjectReview":
        review: dict[str, Any] = {"status": {"userInfo": user.to_json()}}
    elif rtype.kind == "SelfSubjectAccessReview":
        review = {"spec": spec, "status": _access(spec, user, authorizer, rtype)}
    else:
        review = {"spec": spec, "status": _rules(str(spec.get("namespace") or ""), user, authorizer)}
    answer = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": {"creationTimestamp": None}, **review}
    fmt = wire.negotiate(request, allow_shapes=False).fmt
    return wire.respond(request, answer, status=201, fmt=fmt)


def _invalid(rtype: ResourceType, field: str, detail: str) -> ApiError:
    qualified = f"{rtype.kind}.{rtype.group}"
    cause = {"reason": "FieldValueInvalid", "message": f'Invalid value: "null": {detail}', "field": field}
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "" is invalid: {field}: Invalid value: "null": {detail}',
        {"group": rtype.group, "kind": rtype.kind, "causes": [cause]},
    )


def _access(spec: dict[str, Any], user: UserInfo, authorizer: Authorizer, rtype: ResourceType) -> dict[str, Any]:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if isinstance(resource, dict) and isinstance(non_resource, dict):
        detail = "cannot be specified in combination with resourceAttributes"
        raise _invalid(rtype, "spec.nonResourceAttributes", detail)
    if isinstance(resource, dict):
        attrs = Attributes(
            verb=str(resource.get("verb") or ""),
            resource_request=True,
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            namespace=str(resource.get("namespace") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            name=str(resource.get("name") or ""),
        )
    elif isinstance(non_resource, dict):
        attrs = Attributes(
            verb=str(non_resource.get("verb") or ""), resource_request=False, path=str(non_resource.get("path") or "")
        )
    else:
        detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        raise _invalid(rtype, "spec.resourceAttributes", detail)
    return {"allowed": authorizer.allowed(user, attrs)}


def _rules(namespace: str, user: UserInfo, authorizer: Authorizer) -> dict[str, Any]:
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for rule in authorizer.effective_rules(user):
        if rule.namespaces and namespace not in rule.namespaces:
            continue
        if rule.resources:
            resource_rules.append(_resource_rule(rule))
        if rule.non_resource_urls:
            non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}


def _resource_rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups)}
    out["resources"] = list(rule.resources)
    if rule.resource_names:
        out["resourceNames"] = list(rule.resource_names)
    return out
