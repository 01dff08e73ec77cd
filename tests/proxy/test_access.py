"""kproxy.proxy.access without sockets: who the client is, who is admitted (per request, and
at accept time: before a TLS handshake, or at the door of a plain listener with the 403
Status they get before anything is read), the log's rate limit, and upgraded sessions
closed when a reload no longer admits their client."""

from __future__ import annotations

import json
import logging
import time

import pytest

from kproxy.errors import Forbidden
from kproxy.policy.ranges import AuthorizedRanges, parse_trusted_proxies
from kproxy.proxy.access import ClientGate
from tests.proxy.fakes import FakeClient

GET = b"GET /api HTTP/1.1\r\nHost: localhost\r\n"


def gate(ranges: str, trusted: str = "") -> ClientGate:
    return ClientGate(AuthorizedRanges.parse(ranges), parse_trusted_proxies(trusted))


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        (("10.0.0.9", 1), b"", "", "10.0.0.9"),
        (("::ffff:10.0.0.9", 1, 0, 0), b"", "", "10.0.0.9"),  # a dual-stack listener's IPv4 peer
        (("2001:db8::1", 1, 0, 0), b"", "", "2001:db8::1"),
        ("", b"", "", None),  # a unix-socket client has no address
        # X-Forwarded-For counts only when the peer is a trusted front proxy.
        (("10.0.0.9", 1), b"X-Forwarded-For: 192.0.2.7\r\n", "", "10.0.0.9"),
        (("10.0.0.9", 1), b"X-Forwarded-For: 192.0.2.7\r\n", "10.0.0.0/8", "192.0.2.7"),
        (("10.0.0.9", 1), b"X-Forwarded-For: 192.0.2.7, 10.0.0.5\r\n", "10.0.0.0/8", "192.0.2.7"),
    ],
)
def test_who_the_client_is(peer: object, headers: bytes, trusted: str, client: str | None) -> None:
    request = FakeClient(peer).request(GET + headers)
    assert gate("", trusted).client_of(request) == client


@pytest.mark.parametrize(
    ("ranges", "client", "admitted"),
    [
        ("", "203.0.113.1", True),  # no ranges: the check is off
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("10.0.0.0/8", "127.0.0.1", False),  # loopback only when a range covers it
        ("0.0.0.0/32", "127.0.0.1", True),  # AKS: "only this machine"
        ("0.0.0.0/32", "198.51.100.77", False),
        ("2001:db8::/32", "2001:db8::5", True),
    ],
)
def test_who_is_admitted(ranges: str, client: str, admitted: bool) -> None:
    assert gate(ranges).allows(client) is admitted


def test_a_denied_client_gets_forbidden_naming_its_address() -> None:
    request = FakeClient(("192.0.2.1", 1)).request(GET)
    with pytest.raises(Forbidden, match="client 192.0.2.1 is not in the authorized IP ranges"):
        gate("10.0.0.0/8").admit(request)
    assert gate("10.0.0.0/8").admit(FakeClient(("10.9.9.9", 1)).request(GET)) == "10.9.9.9"


def test_denials_are_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the clock kproxy.proxy.access reads
    g = gate("10.0.0.0/8")
    request = FakeClient(("192.0.2.1", 1)).request(GET)
    with caplog.at_level(logging.WARNING, logger="kproxy"):
        for _ in range(5):
            with pytest.raises(Forbidden):
                g.admit(request)
        now[0] += 10
        with pytest.raises(Forbidden):
            g.admit(request)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == "Denied client 192.0.2.1: not in the authorized IP ranges (GET /api)"
    assert lines[1].endswith("(4 more denials not logged)")


def test_active_follows_the_ranges_in_force() -> None:
    g = gate("")
    assert not g.active
    g.replace(AuthorizedRanges.parse("10.0.0.0/8"))
    assert g.active
    g.replace(AuthorizedRanges.parse(""))
    assert not g.active
    assert gate("", "10.0.0.0/8").active  # trusted proxies need the check to find the client


def test_a_reload_closes_the_upgraded_sessions_it_no_longer_admits() -> None:
    g = gate("10.0.0.0/8,192.0.2.0/24")
    kept, dropped = FakeClient(("10.0.0.1", 1)), FakeClient(("192.0.2.1", 1))
    with g.session(kept.request(GET), "10.0.0.1"), g.session(dropped.request(GET), "192.0.2.1"):
        assert g.replace(AuthorizedRanges.parse("10.0.0.0/8")) == 1
        assert dropped.transport is not None and dropped.transport.closed
        assert kept.transport is not None and not kept.transport.closed
    # Sessions that ended are forgotten: a later reload closes nothing.
    assert g.replace(AuthorizedRanges.parse("172.16.0.0/12")) == 0


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


@pytest.mark.parametrize(
    ("ranges", "trusted", "peer", "refused"),
    [
        ("10.0.0.0/8", "", ("10.1.2.3", 5000), False),
        ("10.0.0.0/8", "", ("192.168.1.1", 5000), True),
        ("10.0.0.0/8", "", ("::ffff:10.1.2.3", 5000, 0, 0), False),  # a dual-stack listener's IPv4 client
        ("10.0.0.0/8", "", ("::ffff:127.0.0.1", 5000, 0, 0), True),
        ("10.0.0.0/8", "", "", False),  # a unix-socket client: the socket's mode decides
        ("", "", ("192.168.1.1", 5000), False),  # no ranges: no check
        ("10.0.0.0/8", "192.168.0.0/16", ("192.168.1.1", 5000), False),  # a trusted front proxy: per request
        ("10.0.0.0/8", "192.168.0.0/16", ("172.16.0.1", 5000), True),  # neither trusted nor in range
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
