"""kproxy.proxy.access.ClientGate at the door: which peers are judged at accept, and the
403 Status they get before anything is read."""

from __future__ import annotations

import json

import pytest

from kproxy.policy.ranges import AuthorizedRanges, parse_trusted_proxies
from kproxy.proxy.access import ClientGate


@pytest.mark.parametrize(
    ("ranges", "trusted", "peer", "refused"),
    [
        ("10.0.0.0/8", "", ("10.1.2.3", 5000), False),
        ("10.0.0.0/8", "", ("192.168.1.1", 5000), True),
        ("10.0.0.0/8", "", ("::ffff:10.1.2.3", 5000, 0, 0), False),  # a dual-stack listener's IPv4 client
        ("10.0.0.0/8", "", ("::ffff:127.0.0.1", 5000, 0, 0), True),
        ("10.0.0.0/8", "", "", False),  # a unix-socket client: the socket's mode decides
        ("", "", ("192.168.1.1", 5000), False),  # no ranges: no check
        ("10.0.0.0/8", "192.168.0.0/16", ("192.168.1.1", 5000), False),  # behind a front proxy: per request
    ],
)
def test_who_is_refused_at_the_door(ranges: str, trusted: str, peer: object, refused: bool) -> None:
    gate = ClientGate(AuthorizedRanges.parse(ranges), parse_trusted_proxies(trusted))
    assert (gate.door(peer) is not None) is refused


def test_the_door_answer_is_the_403_status() -> None:
    gate = ClientGate(AuthorizedRanges.parse("10.0.0.0/8"))
    answer = gate.door(("172.16.0.1", 40000))
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"\r\nConnection: close\r\n" in head and b"\r\nContent-Type: application/json\r\n" in head
    assert b"\r\nContent-Length: %d\r\n" % len(body) in head + b"\r\n"
    status = json.loads(body)
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 403, "Forbidden")
    assert status["message"] == "client 172.16.0.1 is not in the authorized IP ranges"


def test_a_reload_moves_the_door() -> None:
    gate = ClientGate(AuthorizedRanges.parse("10.0.0.0/8"))
    assert gate.door(("192.168.1.1", 1)) is not None
    gate.replace(AuthorizedRanges.parse("192.168.0.0/16"))
    assert gate.door(("192.168.1.1", 1)) is None and gate.door(("10.0.0.1", 1)) is not None
