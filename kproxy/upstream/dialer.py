"""The one place that decides how kproxy reaches the API server.

In: an :class:`~kproxy.config.upstream.Upstream` (address, TLS context or a rotating
:class:`~kproxy.credentials.sources.TLSSource`, timeouts, keep-alive, and the forward proxy
chosen at start-up, :class:`~kproxy.config.proxy_route.ProxyRoute`, or none).
Out: a connected transport driving a protocol the caller supplies, or an
:class:`~kproxy.errors.UpstreamError` / :class:`~kproxy.errors.UpstreamTimeout` whose
message names the API server, the proxy if any (never its credentials) and the cause.
Foreign exceptions (``OSError``, ``ssl.SSLError``, ``socket.gaierror``, python-socks')
never leave this module.

Direct: one ``create_connection``, as before proxies existed. Through a proxy:
:func:`kproxy.upstream.tunnel.connect_via` (CONNECT, TLS in TLS, SOCKS5). One deadline,
``--connect-timeout``, covers every hop of a dial. A refused certificate is explained
(:mod:`kproxy.policy.tls_failure`): the peer's certificate is fetched once more without
verification, only on that error path, to tell an unknown CA from a wrong name or a
certificate with only a Common Name.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kproxy.config.upstream import Upstream
from kproxy.credentials.resumption import offering
from kproxy.credentials.sources import TLSSource
from kproxy.errors import UpstreamError, UpstreamTimeout
from kproxy.upstream.tls_reads import create_connection
from kproxy.upstream.tunnel import ProxyTLSFailure, connect_via, proxy_peer_certificate, unverified_context

if TYPE_CHECKING:
    from kproxy.config.proxy_route import ProxyRoute

__all__ = ["ALPN_HTTP1", "Dialer"]

P = TypeVar("P", bound=asyncio.BaseProtocol)
ALPN_HTTP1 = ("http/1.1",)


# Out of descriptors (or kernel memory) for a new socket: the cause is ours, not the
# API server's, and it passes once connections close.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Dialer:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        # Told when a dial fails for want of descriptors (the server stops accepting for a
        # moment): the cause, in words.
        self.exhausted: Callable[[str], object] | None = None

    @property
    def tls(self) -> TLSSource | None:
        """The client certificate source when it can change (the pool watches its generation)."""
        return self._upstream.tls

    @property
    def connect_timeout(self) -> float:
        return self._upstream.connect_timeout

    @property
    def route(self) -> ProxyRoute | None:
        """The forward proxy every connection goes through, or None for direct."""
        return self._upstream.proxy

    async def connect(
        self, protocol_factory: Callable[[], P], *, tunnel: bool = False, alpn: tuple[str, ...] = ALPN_HTTP1
    ) -> tuple[asyncio.Transport, P, int]:
        """(transport, protocol, generation of the client certificate it was made with).

        ``tunnel``: for upgrades, which must not be sent in absolute form to an HTTP
        proxy (plain ``http://`` API servers only; everything else tunnels anyway).
        ``alpn``: the protocols to offer the API server: ``http/1.1`` for the pool and
        for upgrades (as kubectl), ``h2`` first for the HTTP/2 lane.
        """
        up = self._upstream
        ssl_context = up.ssl_context
        generation = 0
        if up.tls is not None:
            # Rotating credentials: the current context (an exec plugin may run for it, a
            # rotated certificate file may be loaded). Outside the connect deadline.
            ssl_context = await up.tls.context()
            generation = up.tls.generation  # read with the context: no await in between
        route = up.proxy
        via = f" through the proxy {route.display}" if route is not None else ""
        try:
            # One deadline for every hop (proxy, CONNECT, TLS handshakes): a black-holed
            # address must fail in seconds, while a live stream afterwards has no timeout.
            async with asyncio.timeout(up.connect_timeout):
                with offering(alpn):
                    transport, protocol = await self._open(protocol_factory, ssl_context, tunnel)
        except TimeoutError:
            raise UpstreamTimeout(
                f"timed out after {up.connect_timeout:g}s connecting to the API server {up.display}{via}"
            ) from None
        except ProxyTLSFailure as exc:
            assert route is not None
            raise await self._proxy_tls_error(route, exc.error) from exc
        except UpstreamError as exc:  # from the tunnel: a forward proxy's failure
            exc.cause = exc.cause or "proxy"
            raise
        except ssl.SSLCertVerificationError as exc:
            from kproxy.policy.tls_failure import describe_verify_failure  # cryptography: on this path only

            der = await self._peer_certificate(tunnel)
            raise UpstreamError(
                describe_verify_failure(
                    f"the API server {up.display}{via}",
                    up.server_hostname or up.host,
                    exc,
                    der,
                    trusted=up.trusted or "the kubeconfig's certificate authority",
                    name_hint="set tls-server-name in the kubeconfig (or --tls-server-name) to one of those names",
                ),
                "tls",
            ) from exc
        except ssl.SSLError as exc:
            raise UpstreamError(
                f"TLS handshake with the API server {up.display}{via} failed: {exc.reason or exc}", "tls"
            ) from exc
        except socket.gaierror as exc:
            raise UpstreamError(
                f"cannot resolve the API server host {up.host!r} ({up.display}): {exc.strerror}", "connect"
            ) from exc
        except OSError as exc:
            if exc.errno in _EXHAUSTED and self.exhausted is not None:
                self.exhausted(f"connecting to the API server failed: {exc.strerror or exc}")
            raise UpstreamError(
                f"cannot connect to the API server {up.display}{via}: {exc.strerror or exc}", "connect"
            ) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _set_keepalive(sock, up.keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport, protocol, generation

    async def _open(
        self, protocol_factory: Callable[[], P], ssl_context: ssl.SSLContext | None, tunnel: bool
    ) -> tuple[asyncio.Transport, P]:
        up = self._upstream
        server_hostname = up.server_hostname if ssl_context is not None else None
        if up.proxy is None:
            return await create_connection(
                protocol_factory, up.host, up.port, ssl_context=ssl_context, server_hostname=server_hostname
            )
        return await connect_via(
            up.proxy,
            up.host,
            up.port,
            protocol_factory,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            tunnel=tunnel,
            user_agent=up.user_agent_header,
        )

    async def _peer_certificate(self, tunnel: bool) -> bytes | None:
        """The API server's certificate, unverified, to explain why verification failed."""
        try:
            async with asyncio.timeout(self._upstream.connect_timeout):
                transport, _ = await self._open(asyncio.Protocol, unverified_context(), tunnel)
        except (OSError, TimeoutError, ssl.SSLError, UpstreamError, ProxyTLSFailure):
            return None
        try:
            obj = transport.get_extra_info("ssl_object")
            return obj.getpeercert(binary_form=True) if obj is not None else None
        finally:
            transport.abort()

    async def _proxy_tls_error(self, route: ProxyRoute, error: ssl.SSLError) -> UpstreamError:
        what = f"the proxy {route.display} (from {route.source})"
        if isinstance(error, ssl.SSLCertVerificationError):
            from kproxy.policy.tls_failure import describe_verify_failure

            try:
                async with asyncio.timeout(self._upstream.connect_timeout):
                    der = await proxy_peer_certificate(route)
            except (OSError, TimeoutError, ssl.SSLError):
                der = None
            return UpstreamError(
                describe_verify_failure(
                    what,
                    route.host,
                    error,
                    der,
                    trusted=self._upstream.proxy_trusted or "the system trust store",
                    name_hint="use the proxy's name as its certificate gives it in the proxy URL",
                ),
                "proxy",
            )
        reason = str(error.reason or error)
        hint = ""
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"):
            hint = "; it does not seem to speak TLS on this port: is it an http:// proxy?"
        return UpstreamError(f"TLS handshake with {what} failed: {reason}{hint}", "proxy")


def _set_keepalive(sock: socket.socket, period: float) -> None:
    # Go's dialer sets both the idle time and the probe interval to the same period.
    if period <= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        return
    seconds = max(1, int(period))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, seconds)
    elif hasattr(socket, "TCP_KEEPALIVE"):  # macOS spells it differently
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, seconds)
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, seconds)
