"""connect_via without sockets: the loop's create_connection and start_tls are scripted.

A :class:`ScriptedProxy` plays the forward proxy: it records every dial, reads the
CONNECT head kproxy writes and answers it with scripted reads (honouring
``pause_reading``, as a real transport does). python-socks is replaced by a fake
``Proxy`` whose ``connect`` returns a socket or raises python-socks' own errors.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import python_socks
import python_socks.async_.asyncio as socks_asyncio

from kproxy.config.proxy_route import ProxyRoute
from kproxy.errors import UpstreamError
from kproxy.policy.go_url import GoURL
from kproxy.upstream.tunnel import ProxyTLSFailure, connect_via, proxy_peer_certificate, unverified_context
from tests.upstream.doubles import FakeSocket, FakeSSLObject, MockTransport, ScriptedProxy

GUARD = 5.0  # seconds; only a hang guard
OK = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: scripted\r\n\r\n"
WHERE = "the proxy http://proxy.example:3128 (from HTTPS_PROXY)"
API_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def route(url: str = "http://proxy.example:3128", proxy_tls: ssl.SSLContext | None = None) -> ProxyRoute:
    return ProxyRoute.from_url(GoURL.parse(url), "HTTPS_PROXY", proxy_tls)


class Target(asyncio.Protocol):
    """The caller's protocol (an UpstreamConnection in kproxy)."""

    def __init__(self) -> None:
        self.transports: list[asyncio.BaseTransport] = []
        self.received = bytearray()
        self.got_bytes = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.got_bytes.set()


@pytest.fixture
async def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ScriptedProxy]:
    loop = asyncio.get_running_loop()

    def install(reads: list[bytes | None], **kw: Any) -> ScriptedProxy:
        proxy = ScriptedProxy(reads, **kw)
        monkeypatch.setattr(loop, "create_connection", proxy.create_connection)
        monkeypatch.setattr(loop, "start_tls", proxy.start_tls)
        return proxy

    return install


async def dial(
    via: ProxyRoute, ssl_context: ssl.SSLContext | None = API_TLS, *, tunnel: bool = False, **kw: Any
) -> tuple[asyncio.Transport, Target]:
    host = kw.pop("host", "api.example")
    port = kw.pop("port", 6443)
    call = connect_via(via, host, port, Target, ssl_context=ssl_context, server_hostname=host, tunnel=tunnel, **kw)
    return await asyncio.wait_for(call, GUARD)


# -- the CONNECT request --------------------------------------------------------------


def basic(pair: bytes) -> bytes:
    return b"Proxy-Authorization: Basic " + base64.b64encode(pair) + b"\r\n"


@pytest.mark.parametrize(
    ("url", "host", "agent", "expected"),
    [
        (
            "http://proxy.example:3128",
            "api.example",
            b"",
            b"CONNECT api.example:6443 HTTP/1.1\r\nHost: api.example:6443\r\n\r\n",
        ),
        (
            # Go sends the percent-decoded userinfo (url.User), base64 of "user:password".
            "http://us%40er:p%3Ass%20w@proxy.example:3128",
            "api.example",
            b"User-Agent: kproxy/test\r\n",
            b"CONNECT api.example:6443 HTTP/1.1\r\nHost: api.example:6443\r\nUser-Agent: kproxy/test\r\n"
            + basic(b"us@er:p:ss w")
            + b"\r\n",
        ),
        (
            "http://user@proxy.example:3128",  # no password: still "user:"
            "::1",
            b"",
            b"CONNECT [::1]:6443 HTTP/1.1\r\nHost: [::1]:6443\r\n" + basic(b"user:") + b"\r\n",
        ),
        (
            "http://proxy.example:3128",
            "b\u00fccher.example",
            b"",
            b"CONNECT xn--bcher-kva.example:6443 HTTP/1.1\r\nHost: xn--bcher-kva.example:6443\r\n\r\n",
        ),
    ],
    ids=["plain", "credentials", "ipv6-user-only", "idna"],
)
async def test_connect_request_head(
    scripted: Callable[..., ScriptedProxy], url: str, host: str, agent: bytes, expected: bytes
) -> None:
    proxy = scripted([OK])
    transport, target = await dial(route(url), host=host, user_agent=agent)
    assert proxy.transport is not None and bytes(proxy.transport.written) == expected
    assert proxy.dials == [{"host": "proxy.example", "port": 3128, "ssl": None, "server_hostname": None}]
    # TLS to the API server inside the tunnel, then the caller's protocol takes over.
    ((raw, handed, ctx, name),) = proxy.handshakes
    assert raw is proxy.transport and handed is target and ctx is API_TLS and name == host
    assert transport is proxy.tls_result and target.transports == [transport]
    assert not proxy.transport.aborted


async def test_https_proxy_is_dialled_with_tls_checked_against_its_name(scripted: Callable[..., ScriptedProxy]) -> None:
    proxy_tls = ssl.create_default_context()
    proxy = scripted([OK])
    await dial(route("https://proxy.example", proxy_tls))
    assert proxy.dials == [{"host": "proxy.example", "port": 443, "ssl": proxy_tls, "server_hostname": "proxy.example"}]
    assert len(proxy.handshakes) == 1  # TLS in TLS


async def test_plain_api_server_without_tunnel_talks_to_the_proxy(scripted: Callable[..., ScriptedProxy]) -> None:
    proxy = scripted([])
    transport, target = await dial(route(), None, tunnel=False)
    assert proxy.transport is transport and transport.get_protocol() is target
    assert target.transports == [transport]
    assert proxy.transport.written == b"" and proxy.handshakes == []  # absolute-form requests follow


async def test_plain_api_server_tunnelled_for_upgrades(scripted: Callable[..., ScriptedProxy]) -> None:
    proxy = scripted([OK, b"from the API server"])
    transport, target = await dial(route(), None, tunnel=True)
    assert proxy.transport is transport and transport.get_protocol() is target
    assert target.transports == [transport] and proxy.handshakes == []
    assert transport.is_reading()  # paused after the answer, resumed for the caller
    await asyncio.wait_for(target.got_bytes.wait(), GUARD)
    assert target.received == b"from the API server"


# -- the proxy's answer ---------------------------------------------------------------


@pytest.mark.parametrize("offset", range(1, len(OK)))
async def test_answer_split_across_reads(scripted: Callable[..., ScriptedProxy], offset: int) -> None:
    proxy = scripted([OK[:offset], OK[offset:]])
    transport, _ = await dial(route())
    assert transport is proxy.tls_result


@pytest.mark.parametrize(
    ("url", "reads", "message"),
    [
        (
            "http://u:wrong@proxy.example:3128",
            [b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"],
            f"{WHERE} requires proxy authentication (HTTP/1.1 407 Proxy Authentication Required) "
            "for CONNECT api.example:6443: the credentials from the proxy URL were rejected",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"],
            f"{WHERE} requires proxy authentication (HTTP/1.1 407 Proxy Authentication Required) "
            "for CONNECT api.example:6443: no credentials were sent; put them in the proxy URL as "
            "http://USER:PASSWORD@HOST:PORT",
        ),
        (
            "http://u:wrong@proxy.example:3128",
            [b"HTTP/1.0 401 Unauthorized\r\n\r\n"],  # tinyproxy's answer to wrong credentials
            f"{WHERE} requires proxy authentication (HTTP/1.0 401 Unauthorized) "
            "for CONNECT api.example:6443: the credentials from the proxy URL were rejected",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"],
            f"{WHERE} refused CONNECT api.example:6443: HTTP/1.1 403 Forbidden",
        ),
        (
            "http://proxy.example:3128",  # net/http: "if resp.StatusCode != 200"
            [b"HTTP/1.1 204 No Content\r\n\r\n"],
            f"{WHERE} refused CONNECT api.example:6443: HTTP/1.1 204 No Content",
        ),
        (
            "http://proxy.example:3128",
            [b"SSH-2.0-OpenSSH_9.6\r\n\r\n"],
            f"{WHERE} answered CONNECT api.example:6443 with something that is not HTTP: 'SSH-2.0-OpenSSH_9.6'",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 OK\r\n\r\n"],
            f"{WHERE} answered CONNECT api.example:6443 with something that is not HTTP: 'HTTP/1.1 OK'",
        ),
        (
            "http://proxy.example:3128",
            [None],
            f"{WHERE} closed the connection without answering CONNECT api.example:6443",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 200 OK\r\n", None],  # the end before the blank line
            f"{WHERE} closed the connection without answering CONNECT api.example:6443",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 200 OK\r\n\r\nSSH"],  # nothing may follow the answer
            f"{WHERE} sent 3 unexpected bytes after its answer to CONNECT api.example:6443",
        ),
        (
            "http://proxy.example:3128",
            [b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"f" * 70000],
            "the proxy's answer to CONNECT has no end of header",
        ),
    ],
    ids=[
        "407-credentials",
        "407-none",
        "401",
        "403",
        "204",
        "ssh",
        "no-status",
        "closed",
        "closed-mid-answer",
        "trailing-bytes",
        "no-end",
    ],
)
async def test_refusals(
    scripted: Callable[..., ScriptedProxy], url: str, reads: list[bytes | None], message: str
) -> None:
    proxy = scripted(reads)
    with pytest.raises(UpstreamError) as caught:
        await dial(route(url))
    assert caught.value.message == message
    assert proxy.transport is not None and proxy.transport.aborted
    assert proxy.handshakes == []


async def test_tunnel_closed_during_the_tls_handshake(scripted: Callable[..., ScriptedProxy]) -> None:
    proxy = scripted([OK])
    proxy.tls_result = None
    with pytest.raises(UpstreamError) as caught:
        await dial(route())
    assert caught.value.message == "the proxy http://proxy.example:3128 closed the tunnel during the TLS handshake"
    assert proxy.transport is not None and proxy.transport.aborted


async def test_tls_failure_inside_the_tunnel_is_left_to_the_caller(scripted: Callable[..., ScriptedProxy]) -> None:
    proxy = scripted([OK])
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    proxy.tls_result = refused
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await dial(route())
    assert caught.value is refused  # the dialer knows the API server's trust and explains it
    assert proxy.transport is not None and proxy.transport.aborted


# -- reaching the proxy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            f"cannot resolve the host of {WHERE}: Name or service not known",
        ),
        (
            # asyncio's words for a refusal; the errno's are clearer.
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('192.0.2.1', 3128)"),
            f"cannot connect to {WHERE}: Connection refused",
        ),
        (
            OSError("Multiple exceptions: [Errno 111] ..."),
            f"cannot connect to {WHERE}: Multiple exceptions: [Errno 111] ...",
        ),
    ],
    ids=["dns", "refused", "no-errno"],
)
async def test_proxy_unreachable(scripted: Callable[..., ScriptedProxy], error: OSError, message: str) -> None:
    scripted([], dial_error=error)
    with pytest.raises(UpstreamError) as caught:
        await dial(route())
    assert caught.value.message == message and caught.value.__cause__ is error


async def test_tls_failure_with_the_proxy_itself(scripted: Callable[..., ScriptedProxy]) -> None:
    failure = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    scripted([], dial_error=failure)
    with pytest.raises(ProxyTLSFailure) as caught:
        await dial(route("https://proxy.example:3128", ssl.create_default_context()))
    assert caught.value.error is failure


@pytest.mark.parametrize("url", ["foo://proxy.example", "http://proxy.example:70000"])
async def test_a_proxy_without_a_usable_port_is_not_dialled(scripted: Callable[..., ScriptedProxy], url: str) -> None:
    proxy = scripted([OK])
    with pytest.raises(UpstreamError) as caught:
        await dial(route(url))
    assert caught.value.message == (
        f"cannot connect to the proxy {route(url).display} (from HTTPS_PROXY): "
        "the URL has no port and its scheme has no default one; add :PORT"
    )
    assert proxy.dials == []


# -- SOCKS5 (python-socks) ------------------------------------------------------------

SOCKS = "the SOCKS proxy socks5://proxy.example (from HTTPS_PROXY)"


class FakeSocksProxy:
    """Stands for python-socks' asyncio ``Proxy``: records how it was made and used."""

    made: list[tuple[Any, ...]] = []
    outcome: FakeSocket | BaseException = FakeSocket()

    def __init__(self, *args: Any, **kw: Any) -> None:
        FakeSocksProxy.made.append((*args, kw))

    async def connect(self, host: str, port: int, timeout: float | None = None) -> FakeSocket:
        FakeSocksProxy.made.append(("connect", host, port, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def socks(monkeypatch: pytest.MonkeyPatch) -> type[FakeSocksProxy]:
    monkeypatch.setattr(socks_asyncio, "Proxy", FakeSocksProxy)
    monkeypatch.setattr(FakeSocksProxy, "made", [])
    monkeypatch.setattr(FakeSocksProxy, "outcome", FakeSocket())
    return FakeSocksProxy


async def test_socks5_asks_the_proxy_to_resolve_then_speaks_tls(
    scripted: Callable[..., ScriptedProxy], socks: type[FakeSocksProxy]
) -> None:
    proxy = scripted([])
    await dial(route("socks5://u%3A1:p%40w@proxy.example"))
    sock = socks.outcome
    assert socks.made == [
        # rdns: the proxy resolves the API server's name, as Go does for socks5 and socks5h.
        (python_socks.ProxyType.SOCKS5, "proxy.example", 1080, "u:1", "p@w", {"rdns": True}),
        ("connect", "api.example", 6443, None),  # the caller's deadline covers the dial
    ]
    # TLS over the socket (kproxy.upstream.tls_reads: a plain connection, then start_tls).
    assert proxy.dials == [{"host": None, "port": None, "sock": sock}]
    assert [(ctx, name) for _, _, ctx, name in proxy.handshakes] == [(API_TLS, "api.example")]
    assert isinstance(sock, FakeSocket) and not sock.closed


async def test_socks5_socket_is_closed_when_tls_fails(
    scripted: Callable[..., ScriptedProxy], socks: type[FakeSocksProxy]
) -> None:
    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    scripted([], dial_error=refused)
    with pytest.raises(ssl.SSLCertVerificationError):
        await dial(route("socks5://proxy.example"))
    assert isinstance(socks.outcome, FakeSocket) and socks.outcome.closed


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        (
            "socks5://proxy.example",
            python_socks.ProxyConnectionError(
                errno.ECONNREFUSED, "Could not connect to proxy proxy.example:1080 [Connection refused]"
            ),
            f"cannot connect to {SOCKS}: Could not connect to proxy proxy.example:1080 [Connection refused]",
        ),
        (
            "socks5://u:wrong@proxy.example",
            python_socks.ProxyError("Username and password authentication failure", 1),
            f"{SOCKS} requires authentication (Username and password authentication failure): "
            "the credentials from the proxy URL were rejected",
        ),
        (
            "socks5://proxy.example",
            python_socks.ProxyError("No acceptable authentication methods were offered", 255),
            f"{SOCKS} requires authentication (No acceptable authentication methods were offered): "
            "no credentials were sent; put them in the proxy URL as socks5://USER:PASSWORD@HOST:PORT",
        ),
        (
            "socks5://proxy.example",
            python_socks.ProxyError("Host unreachable", 4),
            f"{SOCKS} could not connect to api.example:6443: Host unreachable",
        ),
    ],
    ids=["refused", "bad-credentials", "no-credentials", "unreachable"],
)
async def test_socks5_errors(
    scripted: Callable[..., ScriptedProxy], socks: type[FakeSocksProxy], url: str, error: Exception, message: str
) -> None:
    proxy = scripted([])
    socks.outcome = error
    with pytest.raises(UpstreamError) as caught:
        await dial(route(url))
    assert caught.value.message == message and caught.value.__cause__ is error
    assert proxy.dials == []


async def test_socks5_timeout_is_the_callers_timeout(
    scripted: Callable[..., ScriptedProxy], socks: type[FakeSocksProxy]
) -> None:
    scripted([])
    socks.outcome = python_socks.ProxyTimeoutError("Proxy connection timed out: None")
    with pytest.raises(TimeoutError) as caught:
        await dial(route("socks5h://proxy.example:1080"))
    assert not isinstance(caught.value, python_socks.ProxyTimeoutError)  # no foreign type leaves


# -- explaining a refused proxy certificate -------------------------------------------


@pytest.mark.parametrize("der", [b"0\x82 a certificate", None])
async def test_proxy_peer_certificate_is_fetched_unverified(monkeypatch: pytest.MonkeyPatch, der: bytes | None) -> None:
    dials: list[dict[str, Any]] = []
    transport = MockTransport(tls=True, ssl_object=FakeSSLObject(der) if der is not None else None)

    async def create_connection(
        factory: Callable[[], asyncio.BaseProtocol], host: str, port: int, **kw: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        dials.append({"host": host, "port": port, **kw})
        return transport, factory()

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", create_connection)
    assert await proxy_peer_certificate(route("https://proxy.example:8443", ssl.create_default_context())) == der
    ((dialled,),) = [(d,) for d in dials]
    assert (dialled["host"], dialled["port"], dialled["server_hostname"]) == ("proxy.example", 8443, "proxy.example")
    assert dialled["ssl"].verify_mode == ssl.CERT_NONE and not dialled["ssl"].check_hostname
    assert transport.aborted


def test_unverified_context_checks_nothing() -> None:
    ctx = unverified_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
