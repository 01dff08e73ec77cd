"""kproxy.policy.request_info: the verb of a request, by the API server's request-info rules.

The rows are requests kubectl 1.32 sends (seen through kproxy with ``-v=2``), plus the
edges of k8s.io/apiserver's requestinfo.go (its own test table's cases)."""

from __future__ import annotations

import pytest

from kproxy.policy.request_info import VERBS, request_verb


@pytest.mark.parametrize(
    ("method", "target", "verb"),
    [
        # kubectl get / describe / create / apply / edit / delete / logs / top
        ("GET", "/api/v1/namespaces/default/pods?limit=500", "list"),
        ("GET", "/api/v1/namespaces/default/pods/nginx", "get"),
        ("GET", "/api/v1/pods?limit=500", "list"),
        ("GET", "/api/v1/namespaces", "list"),
        ("GET", "/api/v1/namespaces/default", "get"),
        ("GET", "/api/v1/nodes/node-1", "get"),
        ("GET", "/apis/apps/v1/namespaces/default/deployments?limit=500", "list"),
        ("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", "get"),
        ("POST", "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create", "create"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/c?fieldManager=kubectl-client-side-apply", "patch"),
        ("PUT", "/api/v1/namespaces/default/configmaps/c", "update"),
        ("DELETE", "/api/v1/namespaces/default/configmaps/c", "delete"),
        ("DELETE", "/api/v1/namespaces/default/configmaps", "deletecollection"),
        ("DELETE", "/apis/apps/v1/namespaces/default/deployments", "deletecollection"),
        ("GET", "/api/v1/namespaces/default/pods/nginx/log?container=c", "get"),
        ("GET", "/api/v1/namespaces/default/pods/nginx/log?follow=true", "get"),
        ("POST", "/api/v1/namespaces/default/pods/nginx/eviction", "create"),
        ("PUT", "/api/v1/namespaces/default/pods/nginx/status", "update"),
        # watches: the parameter as apimachinery converts it, and the deprecated prefix
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1", "watch"),
        ("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dx&watch=1", "watch"),
        ("GET", "/api/v1/pods?watch=", "watch"),
        ("GET", "/api/v1/pods?watch", "watch"),
        ("GET", "/api/v1/pods?watch=yes", "watch"),
        ("GET", "/api/v1/pods?watch=false", "list"),
        ("GET", "/api/v1/pods?watch=FALSE", "list"),
        ("GET", "/api/v1/pods?watch=0", "list"),
        ("GET", "/api/v1/pods?watch=0&watch=1", "list"),  # the first value counts
        ("GET", "/api/v1/pods?%77atch=1", "watch"),  # keys are decoded
        ("GET", "/api/v1/pods?a=1;watch=1", "list"),  # Go drops pairs with a semicolon
        ("GET", "/api/v1/namespaces/default/pods/nginx?watch=1", "get"),  # named: never a watch
        ("GET", "/api/v1/watch/namespaces/default/pods", "watch"),
        ("GET", "/api/v1/watch/pods/x", "watch"),
        ("GET", "/apis/apps/v1/watch/deployments", "watch"),
        ("GET", "/api/v1/watch", "other"),  # "unable to determine kind and namespace"
        # proxies: the deprecated prefix and the subresources
        ("GET", "/api/v1/proxy/namespaces/default/pods/p", "proxy"),
        ("GET", "/api/v1/namespaces/default/services/web:80/proxy/index.html", "proxy"),
        ("POST", "/api/v1/namespaces/default/services/https:web:443/proxy/", "proxy"),
        ("OPTIONS", "/api/v1/namespaces/default/pods/p:8080/proxy/x", "proxy"),
        ("GET", "/api/v1/nodes/node-1/proxy/metrics", "proxy"),
        ("GET", "/api/v1/namespaces/default/services/web/proxy", "proxy"),
        # namespace subresources stay on the namespace; anything else is a resource in it
        ("PUT", "/api/v1/namespaces/default/finalize", "update"),
        ("GET", "/api/v1/namespaces/default/status", "get"),
        ("GET", "/api/v1/namespaces/default/proxy", "list"),  # a resource named "proxy" in it
        # non-resource: the method, lowercased
        ("GET", "/version", "get"),
        ("GET", "/api", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("GET", "/openapi/v3/api/v1", "get"),
        ("GET", "/healthz", "get"),
        ("HEAD", "/readyz", "head"),
        ("POST", "/version", "post"),
        ("PUT", "/", "put"),
        ("OPTIONS", "/api", "options"),
        ("DELETE", "/logs/x", "delete"),
        ("PATCH", "/metrics", "patch"),
        ("GET", "/", "get"),
        ("GET", "/other/a/b/c", "get"),
        # what cannot be named
        ("TRACE", "/version", "other"),
        ("PROPFIND", "/api/v1/pods", "other"),
        ("OPTIONS", "/api/v1/pods", "other"),
        ("HEAD", "/api/v1/pods", "list"),
        ("HEAD", "/api/v1/namespaces/default/pods/p", "get"),
        ("GET", "//api//v1//pods", "list"),  # Go's splitPath trims, then splits
    ],
)
def test_verbs(method: str, target: str, verb: str) -> None:
    path, _, query = target.partition("?")
    assert request_verb(method, path, query if "?" in target else None) == verb
    assert verb in VERBS


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/default/pods/nginx/exec",
        "/api/v1/namespaces/default/pods/nginx/attach",
        "/api/v1/namespaces/default/pods/nginx/portforward",
        "/api/v1/namespaces/default/services/web/proxy/ws",
    ],
)
def test_upgrades_are_connect(path: str) -> None:
    assert request_verb("GET", path, None, upgrade=True) == "connect"
    assert request_verb("POST", path, "command=sh", upgrade=True) == "connect"


def test_the_label_set_is_fixed_whatever_the_client_sends() -> None:
    weird = ["M-SEARCH", "GET\x00", "", "get", "A" * 100]
    for method in weird:
        for path in ["/", "/api/v1/pods", "/apis/g/v1/x/y", "/version"]:
            assert request_verb(method, path, "watch=1") in VERBS
