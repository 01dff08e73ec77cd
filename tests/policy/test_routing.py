"""kproxy.policy.routing: Go ServeMux routing and kubectl's prefix handling, as tables.

Unless a row says "kproxy:", its expectation is what kubectl 1.32 (go1.23) answers
(docs/kubectl-proxy.md §3, §4, §6.1, §9); the rows were replayed against the real binary.
"""

from __future__ import annotations

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.routing import Route, Router, _clean_path, normalize_prefix, redirect_body, upstream_path


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("", "/"),  # kubectl: --api-prefix="" behaves like "/"
        ("/", "/"),
        ("/custom", "/custom/"),
        ("/custom/", "/custom/"),
        ("/ui", "/ui/"),
        ("/a/b", "/a/b/"),
        ("/api", "/api/"),
        ("/café", "/café/"),
        ("/a(b)", "/a(b)/"),
    ],
)
def test_normalize_prefix(value: str, prefix: str) -> None:
    assert normalize_prefix("--api-prefix", value) == prefix


@pytest.mark.parametrize(
    ("flag", "value", "hint"),
    [
        # kubectl reads these as a host pattern: every request 404s (§3)
        ("--api-prefix", "custom", "--api-prefix=/custom/"),
        ("--www-prefix", "static/", "--www-prefix=/static/"),
        # Go refuses unclean patterns (a panic in kubectl)
        ("--api-prefix", "/a//b", "--api-prefix=/a/b/"),
        ("--api-prefix", "/a/./", "--api-prefix=/a/"),
        ("--www-prefix", "/../", "--www-prefix=/"),
        # Go's pattern syntax or a prefix kubectl's TrimPrefix never matches
        ("--api-prefix", "/{x}/", "'{'"),
        ("--api-prefix", "/a b/", "' '"),
        ("--www-prefix", "/a%20b/", "'%'"),
    ],
)
def test_bad_prefix(flag: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_prefix(flag, value)
    message = str(info.value)
    assert flag in message
    assert repr(value) in message
    assert hint in message


@pytest.mark.parametrize(
    ("api", "www"),
    [("/", "/"), ("/custom/", "/custom/"), ("/custom", "/custom/"), ("", "/")],
)
def test_equal_prefixes(api: str, www: str) -> None:
    # kubectl: Go's ServeMux panics, exit 2 (§1.1 step 6)
    with pytest.raises(ConfigError) as info:
        Router(api, www)
    assert "--api-prefix" in str(info.value)
    assert "--www-prefix" in str(info.value)


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        # Go's net/http cleanPath: rooted, path.Clean'ed, a trailing slash kept
        ("", "/"),
        ("a", "/a"),
        ("a/b/", "/a/b/"),
        ("/", "/"),
        ("//", "/"),
        ("/a//b/", "/a/b/"),
        ("/a/./", "/a/"),
        ("/a/.", "/a"),
        ("/a/..", "/"),
        ("/a/../", "/"),
        ("/../", "/"),
        ("/../a/", "/a/"),
        ("/a/b/../c//", "/a/c/"),
    ],
)
def test_clean_path(path: str, cleaned: str) -> None:
    assert _clean_path(path) == cleaned


def api(path: str, raw_path: str | None = None) -> Route:
    return Route("api", path, raw_path if raw_path is not None else path)


def static(path: str, raw_path: str | None = None) -> Route:
    return Route("static", path, raw_path if raw_path is not None else path)


def redirect(location: str) -> Route:
    return Route("redirect", "", "", location)


NOT_FOUND = Route("not_found", "", "")
BAD_REQUEST = Route("bad_request", "", "")

DEFAULT = ("/", None)
CUSTOM = ("/custom/", "/static/")
CUSTOM_ONLY = ("/custom/", None)
API = ("/api/", None)
WWW_AT_API = ("/", "/api/")
HELP_EXAMPLE = ("/api/", "/static/")
APIFOO = ("/apifoo/", None)
STATIC = ("/", "/static/")
NESTED = ("/a/b/", "/a/")

ROUTES = [
    # §3 path cleaning: the escaped path is cleaned, the query kept byte for byte
    (DEFAULT, "//api//v1/./pods/../x?a=1&b=%2F", redirect("/api/v1/x?a=1&b=%2F")),
    (DEFAULT, "/api/v1/x/..", redirect("/api/v1")),
    (DEFAULT, "/api/v1/x/../", redirect("/api/v1/")),
    (DEFAULT, "/a/./b/.", redirect("/a/b")),
    (DEFAULT, "/.", redirect("/")),
    (DEFAULT, "/..", redirect("/")),
    (DEFAULT, "/../..//", redirect("/")),
    (DEFAULT, "/a/../b?", redirect("/b")),  # an empty query is dropped
    (DEFAULT, "/a/../b?x", redirect("/b?x")),
    (DEFAULT, "//x?%zz", redirect("/x?%zz")),  # the query is not validated
    (DEFAULT, "/a/..?q=é", redirect("/?q=%c3%a9")),  # Go hex-escapes non-ASCII
    (DEFAULT, "", redirect("/")),  # absolute-form target without a path
    (STATIC, "/static/../test.txt", redirect("/test.txt")),
    (STATIC, "/static//test.txt", redirect("/static/test.txt")),
    # kproxy: Go escapes the cleaned path's '%' again (/api%252Fv1, observed)
    (DEFAULT, "//api%2Fv1", redirect("/api%2Fv1")),
    (DEFAULT, "/a/%2e%2e//b", redirect("/a/%2e%2e/b")),
    # a path Go cannot keep as sent (") is re-escaped before cleaning
    (DEFAULT, '//api/v1/pods"x', redirect("/api/v1/pods%22x")),
    (DEFAULT, '/api/v1/a%2F/.."x', redirect("/api/v1/a/..%22x")),
    # not cleaned: %2e%2e, dotted names; the filter sees the decoded form
    (DEFAULT, "/api/v1/%2e%2e/x", api("/api/v1/../x", "/api/v1/%2e%2e/x")),
    (DEFAULT, "/.well-known/x", api("/.well-known/x")),
    (DEFAULT, "/a/..b/c.", api("/a/..b/c.")),
    (DEFAULT, "/api/v1/x?", api("/api/v1/x")),
    # decoding (Go's PathUnescape), raw encoding kept
    (
        DEFAULT,
        "/api/v1/namespaces/a%2Fb/pods",
        api("/api/v1/namespaces/a/b/pods", "/api/v1/namespaces/a%2Fb/pods"),
    ),
    (
        DEFAULT,
        "/api/v1/namespaces/default/pods/x/%65xec",
        api(
            "/api/v1/namespaces/default/pods/x/exec",
            "/api/v1/namespaces/default/pods/x/%65xec",
        ),
    ),
    (DEFAULT, "/api/v1/caf%C3%A9", api("/api/v1/café", "/api/v1/caf%C3%A9")),
    (DEFAULT, "/api/v1/caf%FF", api("/api/v1/caf\udcff", "/api/v1/caf%FF")),
    (DEFAULT, "/a+b/%20", api("/a+b/ ", "/a+b/%20")),  # '+' is not a space in a path
    (DEFAULT, '/api/v1/pods"x', api('/api/v1/pods"x')),
    (DEFAULT, "/", api("/")),
    (DEFAULT, "/api/v1/pods", api("/api/v1/pods")),
    (DEFAULT, "/static/test.txt", api("/static/test.txt")),
    # invalid request targets: Go's server answers 400
    (DEFAULT, "/a%zz", BAD_REQUEST),
    (DEFAULT, "/a%2", BAD_REQUEST),
    (DEFAULT, "/a%", BAD_REQUEST),
    (DEFAULT, "//a%zz", BAD_REQUEST),
    (DEFAULT, "*", BAD_REQUEST),
    (DEFAULT, "api/v1", BAD_REQUEST),
    # §3 prefix without its trailing slash → 301 to the prefix, query kept
    (CUSTOM, "/custom", redirect("/custom/")),
    (CUSTOM, "/custom?x=1", redirect("/custom/?x=1")),
    (CUSTOM, "/%63ustom", redirect("/custom/")),
    (CUSTOM, "/%63ustom?y=2", redirect("/custom/?y=2")),
    (CUSTOM, "//custom", redirect("/custom/")),
    (CUSTOM, "/x/../custom", redirect("/custom/")),
    (CUSTOM, "/custom/./", redirect("/custom/")),
    (CUSTOM, "/static", redirect("/static/")),
    (CUSTOM, "/static?q", redirect("/static/?q")),
    (STATIC, "/static", redirect("/static/")),
    (API, "/api", redirect("/api/")),
    (HELP_EXAMPLE, "/api", redirect("/api/")),
    (WWW_AT_API, "/api", redirect("/api/")),
    (APIFOO, "/apifoo", redirect("/apifoo/")),
    (NESTED, "/a/b", redirect("/a/b/")),
    (NESTED, "/a", redirect("/a/")),
    # §3 segments are compared after unescaping; %2F is not a separator
    (CUSTOM, "/%63ustom/api/v1/pods", api("/api/v1/pods")),
    (CUSTOM, "/custom%2Fapi/v1/pods", NOT_FOUND),
    (CUSTOM, '/custom"/x', NOT_FOUND),
    (NESTED, "/a/%62/api", api("/api")),
    (NESTED, "/a%2Fb/api", NOT_FOUND),
    (NESTED, "/a/b%2Fapi", static("/b/api", "/b%2Fapi")),
    # §4 proxy_server_test.go: prefix /api/ (nothing stripped)
    (API, "/metrics", NOT_FOUND),
    (API, "/api/metrics", api("/api/metrics")),
    (API, "/api/v1/pods/", api("/api/v1/pods/")),
    # prefix / (nothing to strip)
    (DEFAULT, "/metrics", api("/metrics")),
    (DEFAULT, "/api/v1/pods/", api("/api/v1/pods/")),
    # prefix /custom/
    (CUSTOM_ONLY, "/metrics", NOT_FOUND),
    (CUSTOM_ONLY, "/api/metrics", NOT_FOUND),
    (CUSTOM_ONLY, "/api/v1/pods/", NOT_FOUND),
    (CUSTOM_ONLY, "/custom/api/metrics", api("/api/metrics")),
    (CUSTOM_ONLY, "/custom/api/v1/pods/", api("/api/v1/pods/")),
    (CUSTOM_ONLY, "/custom/api/v1/services/", api("/api/v1/services/")),
    (CUSTOM_ONLY, "/custom/", api("/")),
    (
        CUSTOM_ONLY,
        "/custom/api/v1/namespaces/default/pods/x/exec",
        api("/api/v1/namespaces/default/pods/x/exec"),
    ),
    (CUSTOM_ONLY, "/custom/api/v1/pods?watch=1", api("/api/v1/pods")),
    # kproxy: the stripped path keeps the client's encoding (kubectl: a/b and ..)
    (
        CUSTOM_ONLY,
        "/custom/api/v1/namespaces/a%2Fb/pods",
        api("/api/v1/namespaces/a/b/pods", "/api/v1/namespaces/a%2Fb/pods"),
    ),
    (CUSTOM_ONLY, "/custom/api/v1/%2e%2e/y", api("/api/v1/../y", "/api/v1/%2e%2e/y")),
    (CUSTOM_ONLY, "/%63ustom/api/v1/%70ods", api("/api/v1/pods", "/api/v1/%70ods")),
    (CUSTOM_ONLY, '/custom/x"y', api('/x"y')),
    # the raw segments do not line up with the matched ones: re-escape, as kubectl does
    (CUSTOM_ONLY, '/custom%2Fx/y"', api('/x/y"', "/x/y%22")),
    # §4 a prefix starting with "/api" is never stripped
    (APIFOO, "/apifoo/x", api("/apifoo/x")),
    (APIFOO, "/x", NOT_FOUND),
    (("/api-proxy/", None), "/api-proxy/api/v1", api("/api-proxy/api/v1")),
    (("/apis/", None), "/apis/apps/v1", api("/apis/apps/v1")),
    (NESTED, "/a/b/api/v1/pods", api("/api/v1/pods")),
    (NESTED, "/a/b/", api("/")),
    # §9 static: the prefix is stripped from the decoded and the raw path
    (CUSTOM, "/static/test.txt", static("/test.txt")),
    (CUSTOM, "/static/", static("/")),
    (CUSTOM, "/static/%74est.txt", static("/test.txt", "/%74est.txt")),
    (CUSTOM, "/static/%2e%2e/test.txt", static("/../test.txt", "/%2e%2e/test.txt")),
    (CUSTOM, "/static/sp%20ace/", static("/sp ace/", "/sp%20ace/")),
    (CUSTOM, "/static/missing", static("/missing")),
    (CUSTOM, "/%73tatic/test.txt", NOT_FOUND),  # the raw path lacks the prefix
    (CUSTOM, "/static%2Ftest.txt", NOT_FOUND),
    (CUSTOM, '/static/test.txt"', static('/test.txt"', '/test.txt"')),
    (CUSTOM, '/static%2Ftest.txt"', NOT_FOUND),
    (CUSTOM, "/metrics", NOT_FOUND),
    (CUSTOM, "/custom/api/v1/pods", api("/api/v1/pods")),
    (NESTED, "/a/test.txt", static("/test.txt")),
    (NESTED, "/a/bx", static("/bx")),
    (STATIC, "/ui", api("/ui")),
    # §9 --www-prefix=/api/ with the default API prefix: the longest prefix wins
    (WWW_AT_API, "/api/v1/pods", static("/v1/pods")),
    (WWW_AT_API, "/api/test.txt", static("/test.txt")),
    (WWW_AT_API, "/apis/apps/v1", api("/apis/apps/v1")),
    (WWW_AT_API, "/", api("/")),
    # §9 the help example --api-prefix=/api/ --www-prefix=/static/
    (HELP_EXAMPLE, "/", NOT_FOUND),
    (HELP_EXAMPLE, "/version", NOT_FOUND),
    (HELP_EXAMPLE, "/metrics", NOT_FOUND),
    (HELP_EXAMPLE, "/api/v1/pods", api("/api/v1/pods")),
    (HELP_EXAMPLE, "/api/metrics", api("/api/metrics")),
    (HELP_EXAMPLE, "/static/test.txt", static("/test.txt")),
]


@pytest.mark.parametrize(
    ("prefixes", "target", "expected"),
    ROUTES,
    ids=[f"api={p[0]} www={p[1]} {t!r}" for p, t, _ in ROUTES],
)
def test_route(prefixes: tuple[str, str | None], target: str, expected: Route) -> None:
    raw_path, _, raw_query = target.partition("?")
    route = Router(*prefixes).route(raw_path, raw_query if "?" in target else None)
    assert route.kind == expected.kind
    if expected.kind == "redirect":
        assert route.location == expected.location
    elif expected.kind in ("api", "static"):
        assert (route.path, route.raw_path, route.location) == (
            expected.path,
            expected.raw_path,
            None,
        )
    else:
        assert route.location is None
        assert route.raw_path == raw_path


def test_route_query_none_and_empty_agree() -> None:
    router = Router("/custom/", None)
    assert router.route("/custom", None) == router.route("/custom", "")
    assert router.route("/custom", None).location == "/custom/"


@pytest.mark.parametrize(
    ("raw_path", "server_path", "append", "expected"),
    [
        # §6.1 without --append-server-path the server path is dropped
        ("/api/v1/pods", "/k8s/clusters/c-abc", False, "/api/v1/pods"),
        ("/api/v1/pods", "", True, "/api/v1/pods"),
        ("/api/v1/pods", "/", True, "/api/v1/pods"),
        ("/", "", True, "/"),
        # with it: one slash between the two
        (
            "/api/v1/pods",
            "/k8s/clusters/c-abc",
            True,
            "/k8s/clusters/c-abc/api/v1/pods",
        ),
        (
            "/api/v1/pods",
            "/k8s/clusters/c-abc/",
            True,
            "/k8s/clusters/c-abc/api/v1/pods",
        ),
        ("/", "/k8s/clusters/c-abc", True, "/k8s/clusters/c-abc/"),
        ("/api/v1/pods/", "/k8s", True, "/k8s/api/v1/pods/"),
        (
            "/api/v1/namespaces/a%2Fb/pods",
            "/k8s",
            True,
            "/k8s/api/v1/namespaces/a%2Fb/pods",
        ),
        (
            "/api/v1/services/",
            "",
            True,
            "/api/v1/services/",
        ),  # §4, --api-prefix=/custom/
    ],
)
def test_upstream_path(raw_path: str, server_path: str, append: bool, expected: str) -> None:
    assert upstream_path(raw_path, server_path, append) == expected


@pytest.mark.parametrize(
    ("method", "location", "body", "content_type"),
    [
        (
            "GET",
            "/api/v1/x?a=1&b=%2F",
            b'<a href="/api/v1/x?a=1&amp;b=%2F">Moved Permanently</a>.\n\n',
            "text/html; charset=utf-8",
        ),
        (
            "GET",
            "/x?c='\"<>",
            b'<a href="/x?c=&#39;&#34;&lt;&gt;">Moved Permanently</a>.\n\n',
            "text/html; charset=utf-8",
        ),
        ("HEAD", "/api/v1/x", b"", "text/html; charset=utf-8"),
        ("POST", "/api/v1/x", b"", None),
        ("DELETE", "/custom/", b"", None),
        ("get", "/x", b"", None),  # Go compares the method exactly
    ],
)
def test_redirect_body(method: str, location: str, body: bytes, content_type: str | None) -> None:
    assert redirect_body(method, location) == (body, content_type)
