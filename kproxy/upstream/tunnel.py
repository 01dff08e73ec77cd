"""Through a forward proxy to the API server: HTTP ``CONNECT`` (over TCP or TLS) and SOCKS5.

In: a :class:`~kproxy.config.proxy_route.ProxyRoute` (built once at start-up from the
egress decision, see :mod:`kproxy.policy.egress`), the API server's host and port, and the
TLS context to use inside the tunnel. Out: a transport driving the caller's protocol, or an
:class:`~kproxy.errors.UpstreamError` naming the proxy as ``scheme://host:port`` (never
its credentials). Go's transport (``docs/go-proxy-selection.md`` §4) is the model::

    proxy   API server  how
    http    http        TCP to the proxy; requests in absolute form (the relay writes them)
    http    https       TCP to the proxy, CONNECT host:port, TLS to the API server inside
    https   any         TLS to the proxy (checked against the proxy's name), CONNECT, then
                        TLS to the API server inside the TLS tunnel (TLS in TLS)
    socks5  any         SOCKS5 (python-socks), the name resolved by the proxy, then TLS

Upgrades (exec, attach, port-forward) to an ``http://`` API server go through ``CONNECT``
too, as client-go's SPDY and WebSocket dialers do. Deadlines are the caller's (one for the
whole dial); TLS failures inside the tunnel are left to the caller, which knows the API
server's trust; TLS failures with the proxy itself leave as :class:`ProxyTLSFailure`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, cast

from kproxy.errors import UpstreamError
from kproxy.policy.gonet import join_host_port
from kproxy.upstream.tls_reads import create_connection, start_tls

if TYPE_CHECKING:
    from kproxy.config.proxy_route import ProxyRoute

__all__ = ["ProxyTLSFailure", "connect_via", "proxy_peer_certificate", "unverified_context"]

P = TypeVar("P", bound=asyncio.BaseProtocol)

_MAX_REPLY = 64 * 1024


class ProxyTLSFailure(Exception):
    """The TLS handshake with an ``https://`` proxy failed; ``error`` is the ``ssl`` error."""

    def __init__(self, error: ssl.SSLError) -> None:
        super().__init__(str(error))
        self.error = error


async def connect_via(
    route: ProxyRoute,
    target_host: str,
    target_port: int,
    protocol_factory: Callable[[], P],
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    tunnel: bool,
    user_agent: bytes = b"",
) -> tuple[asyncio.Transport, P]:
    """Connect to the API server at ``target_host:target_port`` through ``route``.

    ``ssl_context`` None: plain HTTP to the API server; then ``tunnel`` False returns the
    connection to the proxy itself (absolute-form requests), True a CONNECT tunnel.
    """
    if route.port == 0:
        raise UpstreamError(
            f"cannot connect to the proxy {route.display} (from {route.source}): "
            "the URL has no port and its scheme has no default one; add :PORT"
        )
    if route.kind == "socks5":
        sock = await _socks5(route, target_host, target_port)
        try:
            transport, protocol = await create_connection(
                protocol_factory, sock=sock, ssl_context=ssl_context, server_hostname=server_hostname
            )
        except BaseException:
            sock.close()
            raise
        return transport, protocol
    if ssl_context is None and not tunnel:
        transport, protocol = await _to_proxy(route, protocol_factory)
        return transport, protocol
    transport, reply = await _to_proxy(route, _ConnectReply)
    try:
        from kproxy.policy.no_proxy import idna_ascii  # through a proxy only (docs/startup.md §7)

        target = join_host_port(idna_ascii(target_host), str(target_port)).encode("ascii", "replace")
        transport.write(
            b"CONNECT "
            + target
            + b" HTTP/1.1\r\nHost: "
            + target
            + b"\r\n"
            + user_agent
            + route.authorization
            + b"\r\n"
        )
        await reply.answer(route, target.decode())
        protocol = protocol_factory()
        if ssl_context is not None:
            tls = await start_tls(transport, protocol, ssl_context, server_hostname)
            if tls is None:  # the connection closed during the handshake
                raise UpstreamError(f"the proxy {route.display} closed the tunnel during the TLS handshake")
            return tls, protocol
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport.resume_reading()
        return transport, protocol
    except BaseException:
        transport.abort()
        raise


async def proxy_peer_certificate(route: ProxyRoute) -> bytes | None:
    """The ``https://`` proxy's certificate without verifying it (to explain a failure)."""
    transport, _ = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, route.host, route.port, ssl=unverified_context(), server_hostname=route.host
    )
    try:
        obj = transport.get_extra_info("ssl_object")
        return obj.getpeercert(binary_form=True) if obj is not None else None
    finally:
        transport.abort()


def unverified_context() -> ssl.SSLContext:
    """For fetching a refused certificate to explain the refusal; never for traffic."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _to_proxy(route: ProxyRoute, protocol_factory: Callable[[], P]) -> tuple[asyncio.Transport, P]:
    """TCP (or TLS, for an https:// proxy) to the proxy itself; errors name the proxy."""
    where = f"the proxy {route.display} (from {route.source})"
    try:
        # A proxy's own TLS context offers http/1.1 only, whatever the dial offers the
        # API server inside the tunnel (credentials.sources.proxy_tls_context).
        transport, protocol = await asyncio.get_running_loop().create_connection(
            protocol_factory,
            route.host,
            route.port,
            ssl=route.ssl_context,
            server_hostname=route.host if route.ssl_context is not None else None,
        )
    except ssl.SSLError as exc:
        raise ProxyTLSFailure(exc) from exc
    except socket.gaierror as exc:
        raise UpstreamError(f"cannot resolve the host of {where}: {exc.strerror}") from exc
    except OSError as exc:
        # asyncio words a refused connection "Connect call failed (addr)": name the errno.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UpstreamError(f"cannot connect to {where}: {reason}") from exc
    return transport, protocol


class _ConnectReply(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: exactly the head, up to the blank line."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            self._buffer += data
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0:
            # Nothing may follow: the API server speaks only after our TLS hello or
            # request, so extra bytes mean a confused proxy (and uvloop's start_tls
            # would lose them anyway).
            if self._transport is not None:
                self._transport.pause_reading()
            self._done.set_result(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        elif len(self._buffer) > _MAX_REPLY:
            self._done.set_exception(UpstreamError("the proxy's answer to CONNECT has no end of header"))

    def eof_received(self) -> bool:
        if not self._done.done():
            self._done.set_result(b"")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(b"")

    async def answer(self, route: ProxyRoute, target: str) -> None:
        """Wait for the answer; anything but ``200`` fails, as in Go (net/http
        ``Transport.dialConn``: "if resp.StatusCode != 200")."""
        head = await self._done
        where = f"the proxy {route.display} (from {route.source})"
        if not head:
            raise UpstreamError(f"{where} closed the connection without answering CONNECT {target}")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise UpstreamError(
                f"{where} answered CONNECT {target} with something that is not HTTP: {status_line[:80]!r}"
            )
        status = int(parts[1])
        if status == 407 or status == 401:
            # 407 is the standard answer; some proxies (tinyproxy, for wrong credentials)
            # say 401. Either comes from the proxy: the API server never sees a CONNECT.
            sent = (
                "the credentials from the proxy URL were rejected"
                if route.credentials
                else "no credentials were sent; put them in the proxy URL as http://USER:PASSWORD@HOST:PORT"
            )
            raise UpstreamError(f"{where} requires proxy authentication ({status_line}) for CONNECT {target}: {sent}")
        if status != 200:
            raise UpstreamError(f"{where} refused CONNECT {target}: {status_line}")
        if self._buffer:
            raise UpstreamError(
                f"{where} sent {len(self._buffer)} unexpected bytes after its answer to CONNECT {target}"
            )


async def _socks5(route: ProxyRoute, host: str, port: int) -> socket.socket:
    # Imported here: only SOCKS users pay for it.
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
    from python_socks.async_.asyncio import Proxy

    where = f"the SOCKS proxy {route.display} (from {route.source})"
    # rdns: the proxy resolves the API server's name, as Go does for socks5 and socks5h (§4).
    proxy = Proxy(ProxyType.SOCKS5, route.host, route.port, route.username, route.password, rdns=True)
    try:
        return await proxy.connect(host, port, timeout=None)
    except ProxyTimeoutError:
        raise TimeoutError from None
    except ProxyConnectionError as exc:
        raise UpstreamError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
    except ProxyError as exc:
        text = str(exc)
        if "authentication" in text.lower() or "acceptable" in text.lower():
            sent = (
                "the credentials from the proxy URL were rejected"
                if route.credentials
                else "no credentials were sent; put them in the proxy URL as socks5://USER:PASSWORD@HOST:PORT"
            )
            raise UpstreamError(f"{where} requires authentication ({text}): {sent}") from exc
        raise UpstreamError(f"{where} could not connect to {join_host_port(host, str(port))}: {text}") from exc
