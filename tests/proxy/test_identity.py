"""kproxy.proxy.identity: a connection's client judged once by its certificate, and the
pipeline and fast path acting on the verdict (401 or the identity upstream), without
sockets (tests/proxy/fakes.py). The TLS side is real in tests/config/test_client_verification.py
and end to end in tests/integration/test_sharing.py."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import Unauthorized
from kproxy.http import Request, Response
from kproxy.policy.client_identity import ClientIdentity
from kproxy.policy.ranges import AuthorizedRanges
from kproxy.proxy.access import ClientGate
from kproxy.proxy.fast import ClientState, FastPath, Forward, ForwardCache
from kproxy.proxy.identity import NO_CERTIFICATE, Identify, Peer, identity_of
from kproxy.proxy.pipeline import Pipeline
from kproxy.proxy.relay import Relay
from kproxy.testing import TestPKI
from tests.doubles import MockTransport
from tests.proxy.fakes import FakeClient, FakePool, Script, scripted, upstream
from tests.proxy.test_pipeline import RecordingRelay

ALICE = {"subject": ((("organizationName", "dev"),), (("commonName", "alice"),))}
GET = b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nAuthorization: Bearer mine\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class FakeSSL:
    """What the proxy reads of a finished handshake."""

    certificate: dict[str, Any] | None
    kproxy_verdict: str | None = None

    def getpeercert(self) -> dict[str, Any] | None:
        return self.certificate


def tls_client(certificate: dict[str, Any] | None, verdict: str | None = None) -> FakeClient:
    client = FakeClient()
    client.transport = MockTransport(peer=client.peer, tls=True, ssl_object=FakeSSL(certificate, verdict))
    return client


@pytest.mark.parametrize(
    ("certificate", "verdict", "peer"),
    [
        (ALICE, None, Peer(ClientIdentity("alice", ("dev",)), "", None)),
        (None, None, Peer(None, "client certificate required")),
        ({}, None, Peer(None, "client certificate required")),
        (
            ALICE,
            "certificate has expired",
            Peer(None, "client certificate verification failed: certificate has expired"),
        ),
        (
            {"subject": ((("organizationName", "dev"),),)},
            None,
            Peer(None, "client certificate has no common name (CN): kproxy takes the user name from it"),
        ),
    ],
)
def test_a_connection_is_judged_by_its_certificate(certificate: Any, verdict: str | None, peer: Peer) -> None:
    client = tls_client(certificate, verdict)
    assert Identify("proxy")(client.request(GET)) == peer
    assert Identify("passthrough")(client.request(GET)) == peer


def test_impersonate_mode_prepares_the_identity_lines() -> None:
    peer = Identify("impersonate")(tls_client(ALICE).request(GET))
    assert peer.impersonation == b"Impersonate-User: alice\r\nImpersonate-Group: dev\r\n"


def test_a_plain_connection_has_no_certificate() -> None:
    assert Identify("proxy")(FakeClient().request(GET)).refusal == NO_CERTIFICATE


def test_the_state_is_made_once_per_connection_and_gives_the_identity_per_request() -> None:
    client = tls_client(ALICE)
    calls: list[Request] = []
    identify = Identify("proxy")

    def counting(request: Request) -> Peer:
        calls.append(request)
        return identify(request)

    first, second = client.request(GET), client.request(GET)
    assert identity_of(first) is None  # not judged yet
    state = ClientState.of(first, counting)  # type: ignore[arg-type]
    assert ClientState.of(second, counting) is state and len(calls) == 1  # type: ignore[arg-type]
    assert identity_of(second) == ClientIdentity("alice", ("dev",))
    assert identity_of(FakeClient().request(GET)) is None


def test_a_refused_peer_raises_the_401() -> None:
    Peer(ClientIdentity("alice")).check()
    with pytest.raises(Unauthorized) as caught:
        Peer(None, NO_CERTIFICATE).check()
    assert (caught.value.status, caught.value.reason, caught.value.message) == (401, "Unauthorized", NO_CERTIFICATE)


# -- the pipeline ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


def pipeline(pki: TestPKI, tmp_path: Path, mode: str, ranges: str = "") -> tuple[Pipeline, RecordingRelay]:
    files = pki.write(tmp_path / "pki")
    flags = Flags(
        server="https://api:6443",
        token="" if mode == "passthrough" else "t",
        tls_cert_file=str(files["server.crt"]),
        tls_private_key_file=str(files["server.key"]),
        client_ca_file=str(files["ca.crt"]),
        client_identity=mode,
    )
    relay = RecordingRelay()
    return Pipeline(Options.from_flags(flags), ClientGate(AuthorizedRanges.parse(ranges)), relay, None), relay  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["proxy", "impersonate", "passthrough"])
async def test_the_pipeline_answers_401_and_forwards_nothing(
    pki: TestPKI, tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "kproxy")
    p, relay = pipeline(pki, tmp_path, mode)
    for client, message in (
        (tls_client(None), "client certificate required"),
        (tls_client(ALICE, "unable to get local issuer certificate"), "client certificate verification failed: "),
    ):
        for head in (GET, b"GET /static/x HTTP/1.1\r\nHost: localhost\r\n", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n"):
            answer = await p.handle(client.request(head))
            assert isinstance(answer, Response) and answer.status == 401
            body = json.loads(answer.body)
            assert body["reason"] == "Unauthorized" and body["message"].startswith(message)
    assert relay.forwarded == []
    assert caplog.messages == []  # the client's doing, not an error of kproxy's: a scan must not flood the log


async def test_refused_clients_are_counted_as_client_auth(pki: TestPKI, tmp_path: Path) -> None:
    from kproxy.metrics import tally

    p, _ = pipeline(pki, tmp_path, "proxy")
    before = tally.rejected["client_auth"]
    await p.handle(tls_client(None).request(GET))
    await p.handle(tls_client(ALICE).request(GET))  # let in: not counted
    assert tally.rejected["client_auth"] - before == 1


async def test_the_address_check_comes_first(pki: TestPKI, tmp_path: Path) -> None:
    p, _ = pipeline(pki, tmp_path, "proxy", ranges="10.1.0.0/16")
    answer = await p.handle(tls_client(None).request(GET))  # the client is 10.0.0.9
    assert isinstance(answer, Response) and answer.status == 403


@pytest.mark.parametrize(
    ("mode", "lines"),
    [("proxy", None), ("passthrough", None), ("impersonate", b"Impersonate-User: alice\r\nImpersonate-Group: dev\r\n")],
)
async def test_the_pipeline_passes_the_identity_on(
    pki: TestPKI, tmp_path: Path, mode: str, lines: bytes | None
) -> None:
    p, relay = pipeline(pki, tmp_path, mode)
    answer = await p.handle(tls_client(ALICE).request(GET))
    assert isinstance(answer, Response) and answer.status == 200
    assert relay.impersonated == [lines]


# -- the fast path -----------------------------------------------------------------------


def fast(pool: FakePool, mode: str) -> FastPath:
    cache = ForwardCache()
    cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
    return FastPath(Relay(upstream(), pool), cache, ClientGate(AuthorizedRanges(())), identify=Identify(mode))  # type: ignore[arg-type]


async def test_the_fast_path_leaves_a_refused_client_to_the_ordinary_path() -> None:
    pool = FakePool(idle=[scripted(Script([OK]), reused=True)])
    client = tls_client(None)
    assert not fast(pool, "proxy")(client.request(GET))
    assert isinstance(client.attachment, ClientState) and client.attachment.peer == Peer(None, NO_CERTIFICATE)


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [
        ("proxy", [b"Authorization: Bearer mine"], [b"Impersonate-User", b"Bearer fixed"]),
        ("passthrough", [b"Authorization: Bearer mine"], [b"Impersonate-User"]),
        (
            "impersonate",
            [b"Authorization: Bearer fixed", b"Impersonate-User: alice", b"Impersonate-Group: dev"],
            [b"Bearer mine"],
        ),
    ],
)
async def test_the_fast_path_sends_what_the_mode_says(mode: str, present: list[bytes], absent: list[bytes]) -> None:
    scripts = [Script([OK]), Script([OK])]
    pool = FakePool(idle=[scripted(s, reused=True) for s in reversed(scripts)])
    client = tls_client(ALICE)
    path = fast(pool, mode)
    for _ in scripts:  # the second is served from the connection's memo
        assert path(client.request(GET))
        for _ in range(5):
            await asyncio.sleep(0)
    assert client.done == 2
    for script in scripts:
        for line in present:
            assert line in script.heads[0]
        for text in absent:
            assert text not in script.heads[0]
