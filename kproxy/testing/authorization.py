"""What a user may do: the fake API server's authorizer, RBAC's rules without the objects.

A request becomes :class:`Attributes` the way kube-apiserver's ``RequestInfoFactory``
reads a URL: ``/api/v1/namespaces/NS/pods/NAME/log`` is a *resource request* (verb from
the method: ``get``, ``list`` or ``watch``, ``create``, ``update``, ``patch``, ``delete``,
``deletecollection``; resource ``pods``, subresource ``log``), anything else a
*non-resource request* (verb = the method in lower case, the path).

:class:`Rule` is an RBAC ``PolicyRule`` with its subjects attached: it applies to the
listed users and groups, and allows its verbs on its resources (``"*"``; ``"pods"``;
``"pods/log"``; ``"*/scale"``) in its API groups, names and namespaces (``()``: all,
cluster scope included), and on its non-resource URLs (none by default; exact, or a
prefix ending in ``*``). Matching follows RBAC's ``VerbMatches``/``ResourceMatches``/``NonResourceURLMatches``;
a request is allowed when any rule allows it. A denial is a 403 ``Forbidden`` worded as
kube-apiserver's ``responsewriters.Forbidden`` words it::

    pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "default"

Always in force, as kube-apiserver's bootstrap policy: ``system:masters`` may do
anything; everyone (``system:authenticated`` and ``system:unauthenticated``) may
``get`` the health and version endpoints (``system:public-info-viewer``);
authenticated users may read discovery (``system:discovery``) and create the
self-reviews (``system:basic-user``). The configurable rules come on top; the default
lets ``system:authenticated`` use every everyday verb (``EVERYDAY_VERBS``) on
everything — but not ``impersonate``, which only ``impersonators`` get.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from kproxy.testing.auth import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, UserInfo
from kproxy.testing.status import ApiError

__all__ = ["EVERYDAY_VERBS", "Attributes", "Authorizer", "Rule", "forbidden", "request_attributes"]

EVERYDAY_VERBS = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    # non-resource requests: the HTTP method in lower case
    "post",
    "put",
    "head",
    "options",
    # A resource request with any other method (OPTIONS, TRACE...) has no verb in
    # kube-apiserver's RequestInfo; an admin's "*" allows it, and the handler answers 405.
    "",
)
_SPECIAL_VERBS = frozenset({"proxy", "watch"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SEGMENT = re.compile(r"^[^/%]+$")


@dataclass(frozen=True)
class Rule:
    """An RBAC ``PolicyRule`` bound to ``users`` and ``groups`` (see the module docstring)."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    resource_names: tuple[str, ...] = ()  # () = every name
    namespaces: tuple[str, ...] = ()  # () = every namespace and the cluster scope
    non_resource_urls: tuple[str, ...] = ()  # e.g. ("*",), ("/healthz", "/debug/*")

    def applies_to(self, user: UserInfo) -> bool:
        return user.username in self.users or any(g in self.groups for g in user.groups)

    def allows(self, attrs: Attributes) -> bool:
        if not ("*" in self.verbs or attrs.verb in self.verbs):
            return False
        if not attrs.resource_request:
            return any(_url_matches(rule, attrs.path) for rule in self.non_resource_urls)
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if not ("*" in self.api_groups or attrs.api_group in self.api_groups):
            return False
        if not _resource_matches(self.resources, attrs.resource, attrs.subresource):
            return False
        return not self.resource_names or attrs.name in self.resource_names


@dataclass(frozen=True)
class Attributes:
    """What is asked: kube-apiserver's ``authorizer.Attributes`` (without the user)."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


_BOOTSTRAP = (
    Rule(groups=("system:masters",), non_resource_urls=("*",)),
    Rule(
        groups=(ALL_AUTHENTICATED, ALL_UNAUTHENTICATED),
        verbs=("get",),
        resources=(),
        non_resource_urls=("/healthz", "/healthz/*", "/livez", "/livez/*", "/readyz", "/readyz/*", "/version"),
    ),
    Rule(groups=(ALL_AUTHENTICATED,), verbs=("get",), resources=(), non_resource_urls=("/version/*",)),
    Rule(
        groups=(ALL_AUTHENTICATED,),
        verbs=("get",),
        resources=(),
        non_resource_urls=("/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"),
    ),
    Rule(
        groups=(ALL_AUTHENTICATED,),
        verbs=("create",),
        api_groups=("authorization.k8s.io",),
        resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
    ),
    Rule(
        groups=(ALL_AUTHENTICATED,),
        verbs=("create",),
        api_groups=("authentication.k8s.io",),
        resources=("selfsubjectreviews",),
    ),
)


def default_rules(anonymous: bool) -> list[Rule]:
    """Everything but ``impersonate`` for authenticated users (and anonymous ones if let in)."""
    groups = (ALL_AUTHENTICATED, ALL_UNAUTHENTICATED) if anonymous else (ALL_AUTHENTICATED,)
    return [Rule(groups=groups, verbs=EVERYDAY_VERBS, non_resource_urls=("*",))]


class Authorizer:
    """The bootstrap rules, then ``rules`` (edit it while serving), then ``impersonators``."""

    def __init__(self, rules: Iterable[Rule], impersonators: Collection[str] = ()) -> None:
        self.rules: list[Rule] = list(rules)
        self.impersonators: set[str] = set(impersonators)

    def effective_rules(self, user: UserInfo) -> list[Rule]:
        rules = [r for r in (*_BOOTSTRAP, *self.rules) if r.applies_to(user)]
        if user.username in self.impersonators:
            rules.append(Rule(users=(user.username,), verbs=("impersonate",)))
        return rules

    def allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        return any(rule.allows(attrs) for rule in self.effective_rules(user))

    def check(self, user: UserInfo, attrs: Attributes) -> None:
        """Raise the 403 kube-apiserver answers when ``user`` may not do ``attrs``."""
        if not self.allowed(user, attrs):
            raise forbidden(user, attrs)


def _resource_matches(rules: tuple[str, ...], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for rule in rules:
        if rule in ("*", combined):
            return True
        if subresource and rule == "*/" + subresource:
            return True
    return False


def _url_matches(rule: str, path: str) -> bool:
    if rule == "*" or rule == path:
        return True
    return rule.endswith("*") and path.startswith(rule[:-1])


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> ApiError:
    """kube-apiserver's ``responsewriters.Forbidden``: ``apierrors.NewForbidden`` of ``forbiddenMessage``."""
    who = user.username
    if not attrs.resource_request:
        message = f'User "{who}" cannot {attrs.verb} path "{attrs.path}"'
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        message = f'User "{who}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'
    if reason:
        message = f"{message}: {reason}"
    qualified = attrs.resource + ("." + attrs.api_group if attrs.api_group else "") if attrs.resource_request else ""
    if qualified and attrs.name:
        text = f'{qualified} "{attrs.name}" is forbidden: {message}'
    elif qualified:
        text = f"{qualified} is forbidden: {message}"
    else:
        text = f"forbidden: {message}"
    details: dict[str, str] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.resource_request and attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.resource_request and attrs.resource:
        details["kind"] = attrs.resource
    return ApiError(403, "Forbidden", text, details)


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """kube-apiserver's ``RequestInfoFactory.NewRequestInfo``, on a decoded path."""
    parts = path.strip("/").split("/") if path.strip("/") else []
    non_resource = Attributes(verb=method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            return non_resource  # Go answers this with an error (a 500); the fake, as a path
        verb, rest = rest[0], rest[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if rest[0] == "namespaces":
        if len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in ("1", "true") else "list"
        selected = _exact_name(query.get("fieldSelector", ""))
        if selected and _SEGMENT.match(selected) and selected not in (".", ".."):
            name = selected
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        verb=verb,
        resource_request=True,
        path=path,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
    )


def _exact_name(selector: str) -> str:
    """The name a field selector requires exactly (``metadata.name=NAME``), if any."""
    for term in selector.split(","):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and not key.endswith("!"):
                return value
    return ""
