"""kproxy.policy.egress_decision: the decision without any proxy setting is the one the
proxy rules make from an environment without HTTP_PROXY/HTTPS_PROXY, whatever else it has."""

from __future__ import annotations

import pytest

from kproxy.policy.egress import EgressConfig
from kproxy.policy.egress_decision import Decision, direct

URLS = [
    "https://10.1.2.3:6443",
    "https://api.example.com/k8s/clusters/c-1",
    "HTTPS://API.EXAMPLE.COM",
    "http://127.0.0.1:8080",
    "http://[::1]:8080/",
    "https://kubernetes.default.svc",
    "https://xn--bcher-kva.example",
    "ws://example.com/",
    "unix:///var/run/k8s.sock",
    "example.com:6443",
    "",
]
ENVIRONMENTS = [
    {},
    {"NO_PROXY": "*"},
    {"no_proxy": "10.0.0.0/8,.svc,example.com", "REQUEST_METHOD": "GET"},
    {"HTTP_PROXY": "", "HTTPS_PROXY": ""},  # empty is unset (Go)
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_direct_is_the_decision_of_an_environment_without_proxies(url: str, environ: dict[str, str]) -> None:
    assert direct(url) == EgressConfig.from_environ(environ).decide(url)


@pytest.mark.parametrize(
    "url", ["http://proxy.example:bad", " http://p:3128", "http://[::1:80", "http://h/%zz", ":foo"]
)
def test_urls_go_cannot_parse_are_refused_alike(url: str) -> None:
    with pytest.raises(ValueError) as ours:
        direct(url)
    with pytest.raises(ValueError) as theirs:
        EgressConfig().decide(url)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://10.1.2.3:6443", "direct: HTTPS_PROXY and https_proxy are not set"),
        ("http://10.1.2.3:8080", "direct: HTTP_PROXY and http_proxy are not set"),
        ("ws://h/", "direct: only http and https URLs use a proxy (scheme ws)"),
    ],
)
def test_how_it_reads(url: str, shown: str) -> None:
    decision = direct(url)
    assert isinstance(decision, Decision) and (decision.proxy, str(decision)) == (None, shown)
