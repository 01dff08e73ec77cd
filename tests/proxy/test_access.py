"""kproxy.proxy.access: the peer check a TLS listener makes at accept time, before the handshake."""

from __future__ import annotations

import logging

import pytest

from kproxy.policy.ranges import AuthorizedRanges, parse_trusted_proxies
from kproxy.proxy.access import ClientGate


@pytest.mark.parametrize(
    ("ranges", "trusted", "peer", "admitted"),
    [
        ("", "", ("203.0.113.9", 1), True),  # no ranges: everyone
        ("10.0.0.0/8", "", ("10.1.2.3", 1), True),
        ("10.0.0.0/8", "", ("127.0.0.1", 1), False),
        ("10.0.0.0/8", "", ("::ffff:10.1.2.3", 1, 0, 0), True),  # a dual-stack listener's IPv4 client
        ("::1", "", ("::1", 1, 0, 0), True),
        # A trusted front proxy may connect; its clients are judged per request (X-Forwarded-For).
        ("10.0.0.0/8", "127.0.0.1", ("127.0.0.1", 1), True),
        ("10.0.0.0/8", "127.0.0.1", ("127.0.0.2", 1), False),
        ("", "127.0.0.1", ("192.0.2.1", 1), True),
        ("10.0.0.0/8", "", "", True),  # no address (a unix socket): its file mode decides
    ],
)
def test_admits_peer(ranges: str, trusted: str, peer: object, admitted: bool) -> None:
    gate = ClientGate(AuthorizedRanges.parse(ranges), parse_trusted_proxies(trusted))
    assert gate.admits_peer(peer) is admitted


def test_denials_at_the_door_are_logged_like_the_others(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kproxy")
    gate = ClientGate(AuthorizedRanges.parse("10.0.0.0/8"))
    for _ in range(3):
        assert not gate.admits_peer(("127.0.0.3", 5))
    assert caplog.messages == [
        "Denied client 127.0.0.3: not in the authorized IP ranges (connection closed before the TLS handshake)"
    ]
