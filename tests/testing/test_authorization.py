"""The fake's authorizer (``kproxy.testing.authorization``) as tables: how URLs become
attributes (kube-apiserver's ``RequestInfoFactory``), how rules match (RBAC's), and how
a refusal is worded (``responsewriters.Forbidden``)."""

from __future__ import annotations

import pytest

from kproxy.testing.auth import UserInfo
from kproxy.testing.authorization import Attributes, Authorizer, Rule, default_rules, forbidden, request_attributes

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
ANON = UserInfo("system:anonymous", groups=("system:unauthenticated",))


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "default", "pods", "", "")),
        ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, ("watch", "", "default", "pods", "", "")),
        ("GET", "/api/v1/watch/namespaces/default/pods", {}, ("watch", "", "default", "pods", "", "")),
        ("GET", "/api/v1/pods", {}, ("list", "", "", "pods", "", "")),
        ("HEAD", "/api/v1/namespaces/ns/pods/web", {}, ("get", "", "ns", "pods", "", "web")),
        ("GET", "/api/v1/namespaces/ns/pods/web/log", {}, ("get", "", "ns", "pods", "log", "web")),
        ("POST", "/api/v1/namespaces/ns/pods/web/exec", {}, ("create", "", "ns", "pods", "exec", "web")),
        ("POST", "/api/v1/namespaces/ns/configmaps", {}, ("create", "", "ns", "configmaps", "", "")),
        ("PUT", "/api/v1/namespaces/ns/configmaps/c", {}, ("update", "", "ns", "configmaps", "", "c")),
        ("PATCH", "/api/v1/nodes/n1/status", {}, ("patch", "", "", "nodes", "status", "n1")),
        ("DELETE", "/api/v1/namespaces/ns/configmaps/c", {}, ("delete", "", "ns", "configmaps", "", "c")),
        ("DELETE", "/api/v1/namespaces/ns/configmaps", {}, ("deletecollection", "", "ns", "configmaps", "", "")),
        # A namespace object's namespace attribute is its own name; status and finalize are its subresources.
        ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "", "kube-system", "namespaces", "", "kube-system")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "x", "namespaces", "finalize", "x")),
        # The special verb proxy keeps no subresource: the rest is the path behind it.
        ("GET", "/api/v1/proxy/namespaces/ns/services/web/a/b", {}, ("proxy", "", "ns", "services", "", "web")),
        ("GET", "/api/v1/namespaces/ns/services/web/proxy/a", {}, ("get", "", "ns", "services", "proxy", "web")),
        # A list for one name (kubectl get --watch NAME) is authorized for that name.
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"fieldSelector": "metadata.name=web"},
            ("list", "", "ns", "pods", "", "web"),
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {},
            ("create", "authorization.k8s.io", "", "selfsubjectaccessreviews", "", ""),
        ),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/d", {}, ("get", "apps", "ns", "deployments", "", "d")),
    ],
)
def test_resource_requests(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    attrs = request_attributes(method, path, query)
    assert attrs.resource_request
    assert (attrs.verb, attrs.api_group, attrs.namespace, attrs.resource, attrs.subresource, attrs.name) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("HEAD", "/healthz/ping", "head"),
        ("POST", "/debug/kproxy/echo", "post"),
        ("GET", "/openapi/v3/api/v1", "get"),
    ],
)
def test_non_resource_requests(method: str, path: str, verb: str) -> None:
    assert request_attributes(method, path, {}) == Attributes(verb=verb, resource_request=False, path=path)


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        (Rule(verbs=("get",)), Attributes("get", True, resource="pods"), True),
        (Rule(verbs=("get",)), Attributes("list", True, resource="pods"), False),
        (Rule(verbs=("*",)), Attributes("impersonate", True, resource="users"), True),
        (Rule(resources=("pods",)), Attributes("get", True, resource="pods", subresource="log"), False),
        (Rule(resources=("pods/log",)), Attributes("get", True, resource="pods", subresource="log"), True),
        (Rule(resources=("*/scale",)), Attributes("get", True, resource="deployments", subresource="scale"), True),
        (Rule(resources=("*/scale",)), Attributes("get", True, resource="deployments"), False),
        (Rule(api_groups=("",)), Attributes("get", True, api_group="apps", resource="deployments"), False),
        (Rule(api_groups=("apps",)), Attributes("get", True, api_group="apps", resource="deployments"), True),
        (Rule(namespaces=("dev",)), Attributes("get", True, namespace="dev", resource="pods"), True),
        (Rule(namespaces=("dev",)), Attributes("get", True, namespace="prod", resource="pods"), False),
        (Rule(namespaces=("dev",)), Attributes("list", True, resource="nodes"), False),
        (Rule(resource_names=("a",)), Attributes("get", True, resource="pods", name="a"), True),
        (Rule(resource_names=("a",)), Attributes("list", True, resource="pods"), False),
        # Resource rules say nothing about paths, and non-resource rules nothing about resources.
        (Rule(), Attributes("get", False, path="/healthz"), False),
        (Rule(resources=(), non_resource_urls=("*",)), Attributes("get", True, resource="pods"), False),
        (Rule(non_resource_urls=("/debug/*",)), Attributes("post", False, path="/debug/kproxy/echo"), True),
        (Rule(non_resource_urls=("/debug",)), Attributes("post", False, path="/debug/kproxy/echo"), False),
    ],
)
def test_rule_matching(rule: Rule, attrs: Attributes, allowed: bool) -> None:
    assert rule.allows(attrs) is allowed


def test_rules_apply_to_their_users_and_groups() -> None:
    assert Rule(users=("alice",)).applies_to(ALICE)
    assert Rule(groups=("devs",)).applies_to(ALICE)
    assert not Rule(users=("bob",), groups=("ops",)).applies_to(ALICE)


def test_default_rules_allow_everyday_verbs_not_impersonation() -> None:
    authorizer = Authorizer(default_rules(anonymous=False))
    assert authorizer.allowed(ALICE, request_attributes("DELETE", "/api/v1/namespaces/a/pods", {}))
    assert authorizer.allowed(ALICE, Attributes("post", False, path="/debug/kproxy/echo"))
    assert not authorizer.allowed(ALICE, Attributes("impersonate", True, resource="users", name="bob"))
    assert not authorizer.allowed(ANON, request_attributes("GET", "/api/v1/pods", {}))
    # The bootstrap rules: everyone reads health and version; system:masters does anything.
    assert authorizer.allowed(ANON, Attributes("get", False, path="/readyz/ping"))
    assert not authorizer.allowed(ANON, Attributes("get", False, path="/api"))
    root = UserInfo("root", groups=("system:masters", "system:authenticated"))
    assert authorizer.allowed(root, Attributes("impersonate", True, resource="users", name="bob"))
    authorizer.impersonators.add("alice")
    assert authorizer.allowed(ALICE, Attributes("impersonate", True, resource="users", name="bob"))
    assert Authorizer(default_rules(anonymous=True)).allowed(ANON, request_attributes("GET", "/api/v1/pods", {}))


@pytest.mark.parametrize(
    ("attrs", "message", "details"),
    [
        (
            Attributes("delete", True, namespace="default", resource="pods", name="web"),
            'pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" '
            'in the namespace "default"',
            {"name": "web", "kind": "pods"},
        ),
        (
            Attributes("list", True, resource="nodes"),
            'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
            {"kind": "nodes"},
        ),
        (
            Attributes("get", True, namespace="ns", resource="pods", subresource="log", name="p"),
            'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "ns"',
            {"name": "p", "kind": "pods"},
        ),
        (
            Attributes("create", True, api_group="apps", namespace="ns", resource="deployments"),
            'deployments.apps is forbidden: User "alice" cannot create resource "deployments" in API group "apps" '
            'in the namespace "ns"',
            {"group": "apps", "kind": "deployments"},
        ),
        (
            Attributes("impersonate", True, resource="users", name="jane"),
            'users "jane" is forbidden: User "alice" cannot impersonate resource "users" in API group "" '
            "at the cluster scope",
            {"name": "jane", "kind": "users"},
        ),
        (Attributes("get", False, path="/api"), 'forbidden: User "alice" cannot get path "/api"', {}),
    ],
)
def test_forbidden_wording(attrs: Attributes, message: str, details: dict[str, str]) -> None:
    error = forbidden(ALICE, attrs)
    assert (error.code, error.reason, error.message) == (403, "Forbidden", message)
    assert error.status()["details"] == details
