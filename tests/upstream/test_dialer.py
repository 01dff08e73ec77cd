"""Dialer without sockets: ``_open`` (or the loop and connect_via under it) is scripted.

What is pinned here is the dialer's own job: one deadline for the whole dial, every
foreign error turned into an UpstreamError / UpstreamTimeout naming the API server and
the proxy (never its credentials), keep-alive socket options, and the generation of a
rotating client certificate.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import trustme

from kproxy.config.proxy_route import ProxyRoute
from kproxy.errors import UpstreamError, UpstreamTimeout
from kproxy.policy.go_url import GoURL
from kproxy.upstream import dialer as dialer_module
from kproxy.upstream.dialer import Dialer, _set_keepalive
from kproxy.upstream.tunnel import ProxyTLSFailure
from tests.upstream.doubles import FakeSocket, FakeSSLObject, FakeTLS, MockTransport, upstream

P = TypeVar("P", bound=asyncio.BaseProtocol)
GUARD = 5.0  # seconds; only a hang guard
API = "the API server https://api.example:6443"
HTTP_PROXY = ProxyRoute.from_url(GoURL.parse("http://user:secret@proxy.example:3128"), "HTTPS_PROXY", None)
HTTPS_PROXY = ProxyRoute.from_url(
    GoURL.parse("https://proxy.example:8443"), "kubeconfig proxy-url", ssl.create_default_context()
)
Outcome = BaseException | MockTransport | None  # None: the dial never ends


class ScriptedDialer(Dialer):
    """The real ``connect`` over an ``_open`` that plays one outcome per dial."""

    def __init__(self, *outcomes: Outcome, **changes: Any) -> None:
        super().__init__(upstream(**changes))
        self.outcomes = list(outcomes)
        self.opened: list[tuple[ssl.SSLContext | None, bool]] = []

    async def _open(
        self, protocol_factory: Callable[[], P], ssl_context: ssl.SSLContext | None, tunnel: bool
    ) -> tuple[asyncio.Transport, P]:
        self.opened.append((ssl_context, tunnel))
        outcome = self.outcomes.pop(0)
        if outcome is None:
            await asyncio.get_running_loop().create_future()  # a black-holed address
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, MockTransport)
        protocol = protocol_factory()
        protocol.connection_made(outcome)
        return outcome, protocol


async def connect(dialer: Dialer, tunnel: bool = False) -> tuple[asyncio.Transport, asyncio.Protocol, int]:
    return await asyncio.wait_for(dialer.connect(asyncio.Protocol, tunnel=tunnel), GUARD)


def ssl_error(reason: str | None, text: str) -> ssl.SSLError:
    error = ssl.SSLError(1, text)
    # Set by OpenSSL on real ones, None when it gives no reason (typeshed says str).
    error.reason = reason  # type: ignore[assignment]
    return error


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    error.verify_code = code
    error.verify_message = message
    return error


def certificate_der(*names: str) -> bytes:
    pem = trustme.CA().issue_cert(*names).cert_chain_pems[0].bytes().decode()
    return ssl.PEM_cert_to_DER_cert(pem)


# -- error translation ----------------------------------------------------------------


@pytest.mark.parametrize("route", [None, HTTP_PROXY], ids=["direct", "proxy"])
@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TimeoutError(), UpstreamTimeout, "timed out after 10s connecting to {api}{via}"),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            UpstreamError,
            "cannot connect to {api}{via}: Connection refused",
        ),
        (
            OSError("Multiple exceptions: [Errno 111] ..., [Errno 101] ..."),
            UpstreamError,
            "cannot connect to {api}{via}: Multiple exceptions: [Errno 111] ..., [Errno 101] ...",
        ),
        (
            ssl_error("WRONG_VERSION_NUMBER", "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            UpstreamError,
            "TLS handshake with {api}{via} failed: WRONG_VERSION_NUMBER",
        ),
        (
            ssl_error(None, "no reason given"),
            UpstreamError,
            "TLS handshake with {api}{via} failed: no reason given",
        ),
    ],
    ids=["timeout", "refused", "no-strerror", "tls", "tls-no-reason"],
)
async def test_errors_name_the_api_server_and_the_proxy(
    route: ProxyRoute | None, error: BaseException, kind: type[UpstreamError], message: str
) -> None:
    dialer = ScriptedDialer(error, proxy=route)
    with pytest.raises(kind) as caught:
        await connect(dialer)
    via = " through the proxy http://proxy.example:3128" if route is not None else ""
    assert type(caught.value) is kind
    assert caught.value.message == message.format(api=API, via=via)
    assert "secret" not in caught.value.message and "user" not in caught.value.message
    assert caught.value.__cause__ is (None if isinstance(error, TimeoutError) else error)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
async def test_out_of_descriptors_is_told_to_the_server(code: int) -> None:
    told: list[str] = []
    dialer = ScriptedDialer(OSError(code, "Too many open files"))
    dialer.exhausted = told.append
    with pytest.raises(UpstreamError, match="cannot connect to .*: Too many open files"):
        await connect(dialer)
    assert told == ["connecting to the API server failed: Too many open files"]
    refused = ScriptedDialer(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    refused.exhausted = told.append
    with pytest.raises(UpstreamError):
        await connect(refused)
    assert len(told) == 1  # the API server's refusal is not ours to pause for


async def test_an_unresolvable_host() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(UpstreamError) as caught:
        await connect(ScriptedDialer(error))
    assert caught.value.message == (
        "cannot resolve the API server host 'api.example' (https://api.example:6443): Name or service not known"
    )


async def test_errors_already_explained_pass_unchanged() -> None:
    explained = UpstreamError("the proxy http://proxy.example:3128 (from HTTPS_PROXY) refused CONNECT ...")
    with pytest.raises(UpstreamError) as caught:
        await connect(ScriptedDialer(explained, proxy=HTTP_PROXY))
    assert caught.value is explained


async def test_one_deadline_covers_the_whole_dial() -> None:
    dialer = ScriptedDialer(None, connect_timeout=0.01, proxy=HTTP_PROXY)
    with pytest.raises(UpstreamTimeout) as caught:
        await connect(dialer)
    assert (
        caught.value.message == f"timed out after 0.01s connecting to {API} through the proxy http://proxy.example:3128"
    )


# -- a refused certificate, explained -------------------------------------------------


@pytest.mark.parametrize("tunnel", [False, True])
async def test_a_refused_api_server_certificate_is_fetched_again_to_explain_it(tunnel: bool) -> None:
    peer = MockTransport(tls=True, ssl_object=FakeSSLObject(certificate_der("other.example")))
    dialer = ScriptedDialer(verify_error(62, "Hostname mismatch, certificate is not valid for 'api.example'."), peer)
    with pytest.raises(UpstreamError) as caught:
        await connect(dialer, tunnel)
    assert caught.value.message == (
        f"cannot verify the TLS certificate of {API}: x509: certificate is valid for other.example, not api.example; "
        "set tls-server-name in the kubeconfig (or --tls-server-name) to one of those names"
    )
    (_, first_tunnel), (unverified, again_tunnel) = dialer.opened
    assert unverified is not None and unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
    assert first_tunnel is again_tunnel is tunnel  # the same way (through the same proxy)
    assert peer.aborted


async def test_the_name_checked_is_the_tls_server_name() -> None:
    peer = MockTransport(tls=True, ssl_object=FakeSSLObject(certificate_der("api.example")))
    dialer = ScriptedDialer(verify_error(62, "Hostname mismatch"), peer, server_hostname="internal.example")
    with pytest.raises(UpstreamError, match="valid for api.example, not internal.example;"):
        await connect(dialer)


@pytest.mark.parametrize(
    "second", [OSError(errno.ECONNRESET, "reset"), MockTransport(tls=True)], ids=["dial-fails", "no-certificate"]
)
async def test_a_refused_certificate_that_cannot_be_fetched_again(second: Outcome) -> None:
    dialer = ScriptedDialer(verify_error(20, "unable to get local issuer certificate"), second, trusted="ca.pem")
    with pytest.raises(UpstreamError) as caught:
        await connect(dialer)
    assert caught.value.message.startswith(
        f"cannot verify the TLS certificate of {API}: x509: certificate signed by unknown authority "
        "(unable to get local issuer certificate); trusted: ca.pem."
    )


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("WRONG_VERSION_NUMBER", True),
        ("RECORD_LAYER_FAILURE", True),
        ("HTTP_REQUEST", True),
        ("TLSV1_ALERT_INTERNAL_ERROR", False),
    ],
)
async def test_a_tls_failure_with_the_proxy_names_the_proxy(reason: str, hint: bool) -> None:
    error = ProxyTLSFailure(ssl_error(reason, f"[SSL: {reason}] ..."))
    with pytest.raises(UpstreamError) as caught:
        await connect(ScriptedDialer(error, proxy=HTTPS_PROXY))
    assert caught.value.message == (
        f"TLS handshake with the proxy https://proxy.example:8443 (from kubeconfig proxy-url) failed: {reason}"
        + ("; it does not seem to speak TLS on this port: is it an http:// proxy?" if hint else "")
    )
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("fetched", [True, False])
async def test_a_refused_proxy_certificate_is_explained(monkeypatch: pytest.MonkeyPatch, fetched: bool) -> None:
    asked: list[ProxyRoute] = []

    async def peer_certificate(route: ProxyRoute) -> bytes:
        asked.append(route)
        if not fetched:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return certificate_der("proxy.internal")

    monkeypatch.setattr(dialer_module, "proxy_peer_certificate", peer_certificate)
    error = ProxyTLSFailure(verify_error(62, "Hostname mismatch"))
    with pytest.raises(UpstreamError) as caught:
        await connect(ScriptedDialer(error, proxy=HTTPS_PROXY, proxy_trusted="corp-ca.pem"))
    assert asked == [HTTPS_PROXY]
    what = "cannot verify the TLS certificate of the proxy https://proxy.example:8443 (from kubeconfig proxy-url)"
    if fetched:
        assert caught.value.message == (
            f"{what}: x509: certificate is valid for proxy.internal, not proxy.example; "
            "use the proxy's name as its certificate gives it in the proxy URL"
        )
    else:
        assert caught.value.message == f"{what}: the certificate is not valid for proxy.example (Hostname mismatch)"


# -- a connection that works ----------------------------------------------------------


ON = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
OFF = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
IDLE = getattr(socket, "TCP_KEEPIDLE", -1)  # Linux's names
INTERVAL = getattr(socket, "TCP_KEEPINTVL", -1)
TCP = socket.IPPROTO_TCP
linux_keepalive = pytest.mark.skipif(IDLE == -1 or INTERVAL == -1, reason="Linux socket options")


@linux_keepalive
@pytest.mark.parametrize(
    ("period", "options"),
    [
        # Go's dialer sets the idle time and the probe interval to the same period.
        (30.0, [ON, (TCP, IDLE, 30), (TCP, INTERVAL, 30)]),
        (7.9, [ON, (TCP, IDLE, 7), (TCP, INTERVAL, 7)]),
        (0.5, [ON, (TCP, IDLE, 1), (TCP, INTERVAL, 1)]),  # whole seconds, at least one
        (0.0, [OFF]),
        (-1.0, [OFF]),
    ],
)
def test_set_keepalive(period: float, options: list[tuple[int, int, int]]) -> None:
    sock = FakeSocket()
    _set_keepalive(sock, period)  # type: ignore[arg-type]
    assert sock.options == options


@linux_keepalive
async def test_a_new_connection_gets_keepalive_and_nodelay() -> None:
    sock = FakeSocket()
    dialer = ScriptedDialer(MockTransport(sock=sock), keepalive=15.0)
    _, protocol, generation = await connect(dialer)
    assert isinstance(protocol, asyncio.Protocol) and generation == 0
    assert sock.options == [ON, (TCP, IDLE, 15), (TCP, INTERVAL, 15), (TCP, socket.TCP_NODELAY, 1)]


async def test_a_transport_without_a_socket_is_fine() -> None:
    transport = MockTransport(sock=None)
    assert (await connect(ScriptedDialer(transport)))[0] is transport


async def test_the_rotating_certificate_and_its_generation() -> None:
    tls = FakeTLS()
    fixed = ssl.create_default_context()
    dialer = ScriptedDialer(MockTransport(), MockTransport(), ssl_context=fixed, tls=tls)
    assert dialer.tls is tls and dialer.route is None
    assert (await connect(dialer))[2] == 1
    tls.rotate()
    assert (await connect(dialer))[2] == 2
    assert dialer.opened == [(tls.ctx, False), (tls.ctx, False)]  # not the start-up context


async def test_without_rotation_the_fixed_context_and_generation_zero() -> None:
    fixed = ssl.create_default_context()
    dialer = ScriptedDialer(MockTransport(), ssl_context=fixed)
    assert dialer.tls is None
    assert (await connect(dialer, tunnel=True))[2] == 0
    assert dialer.opened == [(fixed, True)]


# -- _open: direct, or through the proxy ----------------------------------------------


@pytest.mark.parametrize("tls", [True, False])
async def test_direct_dial(monkeypatch: pytest.MonkeyPatch, tls: bool) -> None:
    calls: list[tuple[Any, ...]] = []
    transport = MockTransport()

    async def create_connection(
        factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, **kw: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        calls.append((factory, host, port, kw))
        return transport, factory()

    # (kproxy.upstream.tls_reads.create_connection: the loop's, with TLS of bounded reads)
    monkeypatch.setattr(dialer_module, "create_connection", create_connection)
    ctx = ssl.create_default_context() if tls else None
    await connect(Dialer(upstream(ssl_context=ctx)))
    # server_hostname only with TLS: asyncio refuses it on a plain connection.
    assert calls == [
        (asyncio.Protocol, "api.example", 6443, {"ssl_context": ctx, "server_hostname": "api.example" if tls else None})
    ]


async def test_dial_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    transport = MockTransport()

    async def connect_via(
        route: ProxyRoute, host: str, port: int, factory: Callable[[], asyncio.BaseProtocol], **kw: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        calls.append((route, host, port, factory, kw))
        return transport, factory()

    monkeypatch.setattr(dialer_module, "connect_via", connect_via)
    ctx = ssl.create_default_context()
    agent = b"User-Agent: kproxy/test\r\n"
    dialer = Dialer(upstream(ssl_context=ctx, proxy=HTTP_PROXY, user_agent_header=agent))
    assert dialer.route is HTTP_PROXY
    await connect(dialer, tunnel=True)
    assert calls == [
        (
            HTTP_PROXY,
            "api.example",
            6443,
            asyncio.Protocol,
            {"ssl_context": ctx, "server_hostname": "api.example", "tunnel": True, "user_agent": agent},
        )
    ]
