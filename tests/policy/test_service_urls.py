"""kproxy.policy.service_urls: proxy URLs parsed, built and validated, as tables and properties.

The ID rules are Go's ``SplitSchemeNamePort``; the name and port rules are
k8s.io/apimachinery's validation. Rows marked "kproxy:" are deliberate differences
(one spelling per target), documented in the module.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kproxy.errors import BadRequest
from kproxy.policy.service_urls import (
    InvalidProxyURL,
    Kind,
    ProxyTarget,
    parse,
    proxy_path,
    proxy_url,
    target,
    validate,
)

NS = "/api/v1/namespaces"


def svc(
    name: str, scheme: str = "", port: str = "", rest: str = "", query: str | None = None, namespace: str = "default"
) -> ProxyTarget:
    return ProxyTarget("service", namespace, scheme, name, port, rest, query)


VALID = [
    # path → target
    (f"{NS}/default/services/nginx/proxy", svc("nginx")),
    (f"{NS}/default/services/nginx/proxy/", svc("nginx", rest="/")),
    (f"{NS}/default/services/nginx:80/proxy/", svc("nginx", port="80", rest="/")),
    (f"{NS}/default/services/nginx:http/proxy/index.html", svc("nginx", port="http", rest="/index.html")),
    # a port *named* https: the scheme stays http
    (f"{NS}/default/services/nginx:https/proxy/", svc("nginx", port="https", rest="/")),
    (f"{NS}/default/services/https:nginx:8443/proxy/", svc("nginx", "https", "8443", "/")),
    (f"{NS}/default/services/http:nginx:80/proxy", svc("nginx", "http", "80")),
    # an empty port with a scheme: what kubectl cluster-info prints for metrics-server
    (
        f"{NS}/kube-system/services/https:metrics-server:/proxy",
        svc("metrics-server", "https", "", namespace="kube-system"),
    ),
    # two parts are NAME:PORT, so this is service "https", port "nginx" (Go's rule)
    (f"{NS}/default/services/https:nginx/proxy/", svc("https", port="nginx", rest="/")),
    # the remaining path is kept as sent: an encoded slash stays encoded
    (f"{NS}/default/services/nginx/proxy/a%2Fb/c", svc("nginx", rest="/a%2Fb/c")),
    (f"{NS}/default/services/nginx/proxy//x/../y", svc("nginx", rest="//x/../y")),
    (f"{NS}/default/services/nginx/proxy/?a=1&b=%20", svc("nginx", rest="/", query="a=1&b=%20")),
    (f"{NS}/default/services/nginx/proxy?", svc("nginx", query="")),
    (f"{NS}/default/services/nginx/proxy/x?y?z", svc("nginx", rest="/x", query="y?z")),
    (f"{NS}/default/services/nginx/proxy/a:b", svc("nginx", rest="/a:b")),
    (f"{NS}/default/services/nginx/proxy/pods/x/exec", svc("nginx", rest="/pods/x/exec")),
    # names are checked decoded, kept as written
    (f"{NS}/def%61ult/services/ngin%78/proxy", svc("ngin%78", namespace="def%61ult")),
    (f"{NS}/default/services/nginx:65535/proxy", svc("nginx", port="65535")),
    (f"{NS}/default/services/nginx:080/proxy", svc("nginx", port="080")),  # Go's ParseInt: 80
    (f"{NS}/default/services/a/proxy", svc("a")),
    (f"{NS}/default/services/{'a' * 63}/proxy", svc("a" * 63)),
    (f"{NS}/{'n' * 63}/services/x/proxy", svc("x", namespace="n" * 63)),
    (f"{NS}/default/services/x:abcdefghijklmno/proxy", svc("x", port="abcdefghijklmno")),  # 15
    (f"{NS}/default/services/x:a-1/proxy", svc("x", port="a-1")),
    (f"{NS}/default/services/x:1a/proxy", svc("x", port="1a")),
    (f"{NS}/0ns/services/x/proxy", svc("x", namespace="0ns")),  # a DNS-1123 label may start with a digit
    (f"{NS}/default/pods/web-0/proxy/", ProxyTarget("pod", "default", "", "web-0", "", "/")),
    (
        f"{NS}/default/pods/web-0.example:8080/proxy/metrics",
        ProxyTarget("pod", "default", "", "web-0.example", "8080", "/metrics"),
    ),
    (f"{NS}/default/pods/0pod/proxy", ProxyTarget("pod", "default", "", "0pod", "")),
    (f"{NS}/default/pods/https:web-0:8443/proxy/", ProxyTarget("pod", "default", "https", "web-0", "8443", "/")),
    ("/api/v1/nodes/demo-node/proxy/stats/summary", ProxyTarget("node", "", "", "demo-node", "", "/stats/summary")),
    (
        "/api/v1/nodes/https:10.0.0.1:10250/proxy/metrics",
        ProxyTarget("node", "", "https", "10.0.0.1", "10250", "/metrics"),
    ),
]


@pytest.mark.parametrize(("path", "expected"), VALID)
def test_parse_valid(path: str, expected: ProxyTarget) -> None:
    assert parse(path) == expected
    assert expected.path() == path  # and back, exactly


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/namespaces",
        f"{NS}/default/services",
        f"{NS}/default/services/nginx",
        f"{NS}/default/services/nginx/",
        f"{NS}/default/services/nginx/status",
        f"{NS}/default/services/nginx/proxyx",
        f"{NS}/default/pods/web-0/log",
        f"{NS}/default/configmaps/proxy",
        f"{NS}/default/configmaps/x/proxy",
        f"{NS}/proxy/services",
        f"{NS}/proxy",
        "/api/v1/nodes/demo-node",
        "/api/v1/watch/namespaces/default/services/nginx/proxy",
        "/apis/apps/v1/namespaces/default/deployments/proxy",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:proxy",
        "/version?x=/proxy",
        "/api/v1/namespaces/default/pods?labelSelector=a:b",
        # a fixed segment written with escapes is not recognised: it passes untouched
        f"{NS}/default/%73ervices/Nginx/proxy",
        f"{NS}/default/services/nginx/%70roxy/",
        "/static/api/v1/namespaces/default/services/x:1/proxy",
    ],
)
def test_parse_not_a_proxy_url(path: str) -> None:
    assert parse(path) is None


INVALID = [
    # path → (part, words the message must contain)
    (f"{NS}/default/services/Nginx/proxy/", "service name", "contains 'N'"),
    (f"{NS}/default/services/9nginx/proxy/", "service name", "does not start with a letter"),
    (f"{NS}/default/services/nginx-/proxy/", "service name", "DNS-1035"),
    (f"{NS}/default/services/-nginx/proxy/", "service name", "does not start with a letter"),
    (f"{NS}/default/services/ngi_nx/proxy/", "service name", "contains '_'"),
    (f"{NS}/default/services/a.b/proxy/", "service name", "contains '.'"),  # services: labels only
    (f"{NS}/default/services/{'a' * 64}/proxy/", "service name", "has 64 characters"),
    (f"{NS}/default/services/https::80/proxy/", "service name", "is empty"),
    (f"{NS}/default/services/ngin%2Fx/proxy/", "service name", "contains '/'"),
    (f"{NS}/default/services/ngin%3Ax/proxy/", "service name", "contains ':'"),
    (f"{NS}/Default/services/nginx/proxy/", "namespace", "DNS-1123 label"),
    (f"{NS}/{'n' * 64}/services/nginx/proxy/", "namespace", "has 64 characters"),
    (f"{NS}/a.b/services/nginx/proxy/", "namespace", "contains '.'"),
    (f"{NS}//services/nginx/proxy/", "namespace", "is empty"),
    (f"{NS}/default/pods/Web-0/proxy/", "pod name", "DNS-1123 subdomain"),
    (f"{NS}/default/pods/web..0/proxy/", "pod name", "empty label"),
    (f"{NS}/default/pods/web-.0/proxy/", "pod name", "starting or ending with '-'"),
    (f"{NS}/default/pods/{'a' * 254}/proxy/", "pod name", "has 254 characters"),
    ("/api/v1/nodes/Demo/proxy/", "node name", "DNS-1123 subdomain"),
    (f"{NS}/default/services/nginx:0/proxy/", "port", "out of range"),
    (f"{NS}/default/services/nginx:65536/proxy/", "port", "out of range"),
    (f"{NS}/default/services/nginx:abcdefghijklmnop/proxy/", "port", "has 16 characters"),
    (f"{NS}/default/services/nginx:http--alt/proxy/", "port", "contains '--'"),
    (f"{NS}/default/services/nginx:-http/proxy/", "port", "starts or ends with '-'"),
    (f"{NS}/default/services/nginx:http-/proxy/", "port", "starts or ends with '-'"),
    (f"{NS}/default/services/nginx:HTTP/proxy/", "port", "contains 'H'"),
    (f"{NS}/default/services/nginx:h_p/proxy/", "port", "contains '_'"),
    (f"{NS}/default/services/nginx:-1/proxy/", "port", "has no letter"),
    (f"{NS}/default/services/nginx:1-2/proxy/", "port", "has no letter"),
    # scheme and port the wrong way round
    (f"{NS}/default/services/nginx:80:https/proxy/", "scheme", "must be http or https"),
    (f"{NS}/default/services/ftp:nginx:21/proxy/", "scheme", "must be http or https"),
    (f"{NS}/default/services/HTTPS:nginx:443/proxy/", "scheme", "must be http or https"),
    (f"{NS}/default/services/a:b:c:d/proxy/", "service", "4 ':'-separated parts"),
    # kproxy: one spelling per target
    (f"{NS}/default/services/nginx:/proxy/", "service", "write 'nginx'"),
    (f"{NS}/default/services/:nginx:80/proxy/", "scheme", "write 'nginx:80'"),
    (f"{NS}/default/services/:nginx:/proxy/", "scheme", "write 'nginx'"),
    # a missing /proxy after an ID with a port
    (f"{NS}/default/services/nginx:80", "service name", "no /proxy follows"),
    (f"{NS}/default/services/nginx:80/index.html", "service name", "no /proxy follows"),
    ("/api/v1/nodes/demo-node:10250/metrics", "node name", "no /proxy follows"),
    # scope mistakes
    ("/api/v1/services/nginx/proxy/", "namespace", "services are namespaced"),
    ("/api/v1/pods/web-0/proxy/", "namespace", "pods are namespaced"),
    (f"{NS}/default/nodes/demo-node/proxy/", "namespace", "nodes are not namespaced"),
    # the /api/v1/proxy form, removed in Kubernetes 1.10
    (
        "/api/v1/proxy/namespaces/default/services/nginx:80/x?y=1",
        "path",
        "use /api/v1/namespaces/default/services/nginx:80/proxy/x?y=1",
    ),
    ("/api/v1/proxy/nodes/demo-node/metrics", "path", "use /api/v1/nodes/demo-node/proxy/metrics"),
    ("/api/v1/proxy/whatever", "path", "removed in Kubernetes 1.10"),
]


@pytest.mark.parametrize(("path", "part", "words"), INVALID)
def test_parse_invalid(path: str, part: str, words: str) -> None:
    with pytest.raises(InvalidProxyURL) as info:
        parse(path)
    assert info.value.part == part
    assert words in info.value.message
    assert "the form is /api/v1/" in info.value.message


def test_invalid_proxy_url_is_a_400_status() -> None:
    with pytest.raises(BadRequest) as info:
        parse(f"{NS}/default/services/nginx:0/proxy/")
    exc = info.value
    assert exc.status == 400
    status = json.loads(exc.body())
    assert status["kind"] == "Status" and status["code"] == 400 and status["reason"] == "BadRequest"
    assert status["message"].startswith("invalid service proxy URL: port '0' is out of range")


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"kind": "service", "name": "nginx"}, f"{NS}/default/services/nginx/proxy"),
        ({"kind": "service", "name": "nginx", "port": "http", "rest": "/"}, f"{NS}/default/services/nginx:http/proxy/"),
        (
            {"kind": "service", "name": "m", "scheme": "https", "namespace": "kube-system"},
            f"{NS}/kube-system/services/https:m:/proxy",
        ),
        (
            {"kind": "service", "name": "m", "scheme": "https", "port": "443"},
            f"{NS}/default/services/https:m:443/proxy",
        ),
        (
            {"kind": "pod", "name": "web-0", "port": "8080", "rest": "/a%2Fb"},
            f"{NS}/default/pods/web-0:8080/proxy/a%2Fb",
        ),
        (
            {"kind": "node", "name": "demo-node", "namespace": "ignored", "rest": "/metrics"},
            "/api/v1/nodes/demo-node/proxy/metrics",
        ),
    ],
)
def test_proxy_path(kwargs: dict[str, str], path: str) -> None:
    kind = kwargs.pop("kind")
    assert proxy_path(kind, **kwargs) == path  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"kind": "service", "name": "Nginx"}, "service name"),
        ({"kind": "service", "name": "nginx", "port": "0"}, "port"),
        ({"kind": "service", "name": "nginx", "scheme": "ftp"}, "scheme"),
        ({"kind": "service", "name": "nginx", "namespace": ""}, "namespace"),
        ({"kind": "service", "name": "nginx", "rest": "x"}, "remaining path"),
        ({"kind": "service", "name": "nginx", "rest": "/x?y"}, "remaining path"),
        ({"kind": "pod", "name": "a:b"}, "pod name"),
        ({"kind": "deployment", "name": "x"}, "kind"),
    ],
)
def test_proxy_path_rejects(kwargs: dict[str, str], part: str) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(InvalidProxyURL) as info:
        proxy_path(kind, **kwargs)  # type: ignore[arg-type]
    assert info.value.part == part


def test_node_with_namespace_is_invalid() -> None:
    with pytest.raises(InvalidProxyURL, match="nodes are not namespaced"):
        validate(ProxyTarget("node", "default", "", "demo-node", ""))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nginx", ("", "nginx", "")),
        ("nginx:http", ("", "nginx", "http")),
        ("https:nginx:", ("https", "nginx", "")),
        ("https:nginx:8443", ("https", "nginx", "8443")),
    ],
)
def test_target_from_spec(spec: str, expected: tuple[str, str, str]) -> None:
    t = target("service", spec, namespace="web", rest="/")
    assert (t.scheme, t.name, t.port) == expected
    assert t.id == spec
    assert t.namespace == "web"


def test_describe_and_url() -> None:
    t = svc("nginx", port="http", rest="/")
    assert t.describe() == "service default/nginx:http"
    assert ProxyTarget("node", "", "https", "n1", "").describe() == "node https:n1:"
    assert (
        proxy_url("http://127.0.0.1:8001/", t)
        == "http://127.0.0.1:8001/api/v1/namespaces/default/services/nginx:http/proxy/"
    )


# -- properties ---------------------------------------------------------------------

# Reference rules written independently of the module (apimachinery's regexes and limits).
LABEL_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")

labels_1123 = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
labels_1035 = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
subdomains = st.lists(labels_1123, min_size=1, max_size=5).map(".".join).filter(lambda s: len(s) <= 253)
port_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?", fullmatch=True).filter(
    lambda s: "--" not in s and any(c.isalpha() for c in s)
)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(str), port_names)
PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@%"
segments = st.text(alphabet=PATH_CHARS, max_size=8)
rests = st.one_of(st.just(""), st.lists(segments, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)))
queries = st.one_of(st.none(), st.text(alphabet=PATH_CHARS + "/?", max_size=12))


@st.composite
def valid_targets(draw: st.DrawFn) -> ProxyTarget:
    kind: Kind = draw(st.sampled_from(["service", "pod", "node"]))
    name = draw(labels_1035 if kind == "service" else subdomains)
    namespace = "" if kind == "node" else draw(labels_1123)
    scheme = draw(st.sampled_from(["", "http", "https"]))
    return ProxyTarget(kind, namespace, scheme, name, draw(ports), draw(rests), draw(queries))


@given(valid_targets())
def test_property_round_trip(t: ProxyTarget) -> None:
    validate(t)
    assert parse(t.path()) == t


# Texts that cannot change the URL's structure: no '/', '?', ':' or '%'.
NAME_NOISE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=@ "


@given(st.text(alphabet=NAME_NOISE, max_size=70).filter(lambda s: not (LABEL_1035.fullmatch(s) and len(s) <= 63)))
def test_property_invalid_service_names_rejected(name: str) -> None:
    with pytest.raises(InvalidProxyURL) as info:
        parse(svc(name, rest="/").path())
    assert info.value.part == "service name"


@given(st.text(alphabet=NAME_NOISE, max_size=70).filter(lambda s: not (LABEL_1123.fullmatch(s) and len(s) <= 63)))
def test_property_invalid_namespaces_rejected(namespace: str) -> None:
    with pytest.raises(InvalidProxyURL) as info:
        parse(ProxyTarget("pod", namespace, "", "web-0", "").path())
    assert info.value.part == "namespace"


@given(
    st.text(alphabet=NAME_NOISE, max_size=260).filter(
        lambda s: not (all(LABEL_1123.fullmatch(p) for p in s.split(".")) and len(s) <= 253)
    ),
    st.sampled_from(["pod", "node"]),
)
def test_property_invalid_subdomain_names_rejected(name: str, kind: str) -> None:
    t = ProxyTarget(kind, "" if kind == "node" else "default", "", name, "")  # type: ignore[arg-type]
    with pytest.raises(InvalidProxyURL) as info:
        parse(t.path())
    assert info.value.part == f"{kind} name"


def _valid_port(port: str) -> bool:
    if port.isdigit():
        return 1 <= int(port) <= 65535
    return (
        len(port) <= 15
        and re.fullmatch(r"[-a-z0-9]+", port) is not None
        and re.search("[a-z]", port) is not None
        and "--" not in port
        and not port.startswith("-")
        and not port.endswith("-")
    )


@given(
    st.one_of(
        st.integers(65536, 10**7).map(str), st.just("0"), st.text(alphabet=NAME_NOISE, min_size=1, max_size=20)
    ).filter(lambda p: not _valid_port(p))
)
def test_property_invalid_ports_rejected(port: str) -> None:
    with pytest.raises(InvalidProxyURL) as info:
        parse(svc("nginx", port=port, rest="/").path())
    assert info.value.part == "port"


FORMS = st.sampled_from(
    [
        f"{NS}/default/services/",
        f"{NS}/x/pods/",
        "/api/v1/nodes/",
        "/api/v1/services/",
        f"{NS}/default/nodes/",
        "/api/v1/proxy/nodes/",
        f"{NS}/",
    ]
)
IDS = st.text(alphabet="abcnx-.:%2FA09", max_size=12)
TAILS = st.sampled_from(
    ["/proxy", "/proxy/", "/proxy/a%2Fb", "/proxy?q", "", "/", "/status", "/proxyx", "/proxy/x?y=/"]
)


@given(FORMS, IDS, TAILS)
def test_property_parse_is_exact_or_refuses(form: str, id_text: str, tail: str) -> None:
    # Whatever the input, parse either declines, refuses with a reason, or reads a target
    # that spells the input exactly.
    path = form + id_text + tail
    try:
        t = parse(path)
    except InvalidProxyURL as exc:
        assert exc.message.startswith("invalid ")
        return
    if t is not None:
        assert t.path() == path
        validate(t)
