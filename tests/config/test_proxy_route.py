"""kproxy.config.proxy_route: the forward proxy as dialed and named, from its URL (ports by
scheme, IDNA, brackets) and its userinfo (the Proxy-Authorization line, never in repr)."""

from __future__ import annotations

import base64

import pytest

from kproxy.config.proxy_route import ProxyRoute
from kproxy.policy.go_url import GoURL


@pytest.mark.parametrize(
    ("url", "kind", "port", "display"),
    [
        ("http://p", "http", 80, "http://p"),
        ("https://p", "https", 443, "https://p"),
        ("socks5://p", "socks5", 1080, "socks5://p"),
        ("socks5h://p:1081", "socks5", 1081, "socks5h://p:1081"),
        ("socks5h://p", "socks5", 0, "socks5h://p"),  # Go knows no default port for socks5h
        ("socks4://p:1080", "http", 1080, "socks4://p:1080"),  # any other scheme: plain HTTP proxy
        ("http://[2001:db8::1]:3128", "http", 3128, "http://[2001:db8::1]:3128"),
        ("http://bücher.example:3128", "http", 3128, "http://xn--bcher-kva.example:3128"),
    ],
)
def test_route_from_url(url: str, kind: str, port: int, display: str) -> None:
    route = ProxyRoute.from_url(GoURL.parse(url), "HTTPS_PROXY", None)
    assert (route.kind, route.port, route.display) == (kind, port, display)


@pytest.mark.parametrize(
    ("userinfo", "decoded"),
    [("al%69ce:p%40ss%3Aw0rd", "alice:p@ss:w0rd"), ("bob", "bob:"), ("bob:", "bob:"), ("", None)],
)
def test_proxy_authorization_is_percent_decoded(userinfo: str, decoded: str | None) -> None:
    url = f"http://{userinfo}@proxy:3128" if userinfo else "http://proxy:3128"
    route = ProxyRoute.from_url(GoURL.parse(url), "HTTPS_PROXY", None)
    if decoded is None:
        assert route.authorization == b"" and not route.credentials
    else:
        assert route.authorization == b"Proxy-Authorization: Basic " + base64.b64encode(decoded.encode()) + b"\r\n"
    assert "w0rd" not in repr(route) and "alice" not in route.display
