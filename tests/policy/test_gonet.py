"""kproxy.policy.gonet: Go's host:port splitting and joining, and the loopback test."""

from __future__ import annotations

import pytest

from kproxy.policy.gonet import is_loopback_host, join_host_port, split_host_port, unmap_ipv4


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),  # all of 127.0.0.0/8
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("2001:db8::1", False),
        ("localhost.", False),  # a name other than localhost is never resolved
        ("localhost.localdomain", False),
        ("my-localhost", False),
        ("[::1]", False),  # bracket-free hosts only
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("host", "port", "joined"),
    [
        ("127.0.0.1", "8001", "127.0.0.1:8001"),
        ("::1", "8001", "[::1]:8001"),
        ("fe80::1%eth0", "80", "[fe80::1%eth0]:80"),
        ("example.com", "443", "example.com:443"),
        ("", "80", ":80"),
    ],
)
def test_join_host_port(host: str, port: str, joined: str) -> None:
    assert join_host_port(host, port) == joined
    assert split_host_port(joined) == (host, port)


@pytest.mark.parametrize("hostport", ["example.com", "::1", "[::1]", "[::1]x:80", "a:b:80", "[a]]:80", "a]:80"])
def test_split_host_port_refuses_what_go_refuses(hostport: str) -> None:
    assert split_host_port(hostport) is None


@pytest.mark.parametrize(
    ("address", "shown"),
    [("::ffff:127.0.0.2", "127.0.0.2"), ("::1", "::1"), ("10.0.0.1", "10.0.0.1"), ("::ffff:abcd", "::ffff:abcd")],
)
def test_unmap_ipv4(address: str, shown: str) -> None:
    assert unmap_ipv4(address) == shown
