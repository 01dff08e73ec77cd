"""The one place that decides how kproxy reaches the API server.

In: an :class:`~kproxy.options.Upstream` (address, TLS context or a rotating
:class:`~kproxy.credentials.TLSSource`, timeouts, keep-alive).
Out: a connected transport driving a protocol the caller supplies, or an
:class:`~kproxy.errors.UpstreamError` / :class:`~kproxy.errors.UpstreamTimeout` whose
message names the API server and the cause. Foreign exceptions (``OSError``,
``ssl.SSLError``, ``socket.gaierror``) never leave this module.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

from .credentials import TLSSource
from .errors import UpstreamError, UpstreamTimeout
from .options import Upstream

__all__ = ["Dialer"]

P = TypeVar("P", bound=asyncio.BaseProtocol)


class Dialer:
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    @property
    def tls(self) -> TLSSource | None:
        """The client certificate source when it can change (the pool watches its generation)."""
        return self._upstream.tls

    async def connect(self, protocol_factory: Callable[[], P]) -> tuple[asyncio.Transport, P, int]:
        """(transport, protocol, generation of the client certificate it was made with)."""
        up = self._upstream
        loop = asyncio.get_running_loop()
        ssl_context = up.ssl_context
        generation = 0
        if up.tls is not None:
            # Rotating credentials: the current context (an exec plugin may run for it, a
            # rotated certificate file may be loaded). Outside the connect deadline.
            ssl_context = await up.tls.context()
            generation = up.tls.generation  # read with the context: no await in between
        try:
            # One deadline for TCP connect and TLS handshake together: a black-holed address
            # must fail in seconds, while a live stream afterwards has no timeout at all.
            async with asyncio.timeout(up.connect_timeout):
                transport, protocol = await loop.create_connection(
                    protocol_factory,
                    up.host,
                    up.port,
                    ssl=ssl_context,
                    server_hostname=up.server_hostname if ssl_context is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"timed out after {up.connect_timeout:g}s connecting to the API server {up.display}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(
                f"cannot verify the TLS certificate of the API server {up.display}: "
                f"{exc.verify_message or exc.reason}"
            ) from exc
        except ssl.SSLError as exc:
            raise UpstreamError(
                f"TLS handshake with the API server {up.display} failed: {exc.reason or exc}"
            ) from exc
        except socket.gaierror as exc:
            raise UpstreamError(
                f"cannot resolve the API server host {up.host!r} ({up.display}): {exc.strerror}"
            ) from exc
        except OSError as exc:
            raise UpstreamError(
                f"cannot connect to the API server {up.display}: {exc.strerror or exc}"
            ) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _set_keepalive(sock, up.keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport, protocol, generation


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
