"""TLS to the API server with bounded reads: from the socket, and so decrypted.

In: a connected transport (TCP to the API server, a SOCKS5 socket, or a ``CONNECT``
tunnel through a forward proxy), the protocol that is to speak through TLS, the TLS
context and the server name. Out: the TLS transport, with the protocol's
``connection_made`` called, as after ``loop.create_connection(..., ssl=...)``; the
handshake's errors as that raises them.

Why not ``create_connection(ssl=...)`` alone (``docs/upstream-connections.md`` §7): the
TLS layer of uvloop and asyncio (``SSLProtocol``) reads the socket into a 256 KiB buffer
of its own, as much as the kernel holds at once, and moves all of it into OpenSSL's
incoming memory BIO; and it gives a plain protocol everything pending decrypted at once,
joined into one ``bytes`` of up to 256 KiB. When a client reads an answer slowly, kproxy
stops reading its upstream connection, the kernel's receive buffer fills, and after each
pause all of that happens again: per slow connection, the layer's read buffer touched for
good, the BIO grown to hold a whole read, and a 256 KiB read decrypted and waiting. A
hundred slow clients cost about 100 MiB that way.

So :class:`BoundedReads` goes between the socket and the layer: it hands the transport
the first :data:`SOCKET_READ` bytes of the layer's own read buffer
(``SSLProtocol.get_buffer``, a public method in both implementations) and passes
everything else through. The layer's flow control (``set_read_buffer_limits``) then
keeps the BIO below its high-water mark plus one read, and since the layer decrypts
what the BIO holds, a decrypted read is no larger. Its two per-read methods are
callables of C, so that TLS reads cost the small requests' path no Python frame.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import ssl
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

__all__ = ["SOCKET_READ", "BoundedReads", "create_connection", "start_tls"]

P = TypeVar("P", bound=asyncio.BaseProtocol)

# The most read from an upstream socket at once, while TLS is spoken on it.
SOCKET_READ = 32 * 1024


class _TLSLayer(Protocol):
    """What asyncio's and uvloop's ``SSLProtocol`` offer the transport below them."""

    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def eof_received(self) -> bool | None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...


class BoundedReads(asyncio.BufferedProtocol):
    """Between a transport and the TLS layer above it: reads of at most ``size`` bytes,
    into the layer's own buffer."""

    def __init__(self, layer: _TLSLayer, size: int = SOCKET_READ) -> None:
        self._layer = layer
        # The layer's buffer is 256 KiB and never moves (a request for more is cut to
        # the size it starts with): one view serves for the connection's life.
        view = self._view = layer.get_buffer(size)[:size]
        # Both called per socket read: callables of C, so that no Python frame is added
        # to the read (next(repeat(view), sizehint) is always view).
        self.get_buffer = functools.partial(next, itertools.repeat(view))  # type: ignore[method-assign]
        self.buffer_updated = layer.buffer_updated  # type: ignore[method-assign]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._layer.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        return self._layer.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._layer.connection_lost(exc)

    def pause_writing(self) -> None:
        self._layer.pause_writing()

    def resume_writing(self) -> None:
        self._layer.resume_writing()


async def start_tls(
    transport: asyncio.Transport,
    protocol: asyncio.BaseProtocol,
    ssl_context: ssl.SSLContext,
    server_hostname: str | None,
) -> asyncio.Transport | None:
    """TLS over ``transport`` for ``protocol``; None if the connection closed during
    the handshake. On failure ``transport`` is closed."""
    try:
        tls = await asyncio.get_running_loop().start_tls(
            transport, protocol, ssl_context, server_hostname=server_hostname
        )
    except BaseException:
        transport.abort()
        raise
    if tls is None:
        transport.abort()
        return None
    layer = transport.get_protocol()
    if hasattr(layer, "get_buffer") and hasattr(layer, "buffer_updated"):
        transport.set_protocol(BoundedReads(cast(_TLSLayer, layer)))
    # start_tls does not call connection_made (call_connection_made=False in asyncio
    # and uvloop): the caller's protocol takes over here.
    protocol.connection_made(tls)
    return tls


async def create_connection(
    protocol_factory: Callable[[], P],
    host: str | None = None,
    port: int | None = None,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    sock: socket.socket | None = None,
) -> tuple[asyncio.Transport, P]:
    """``loop.create_connection`` (to ``host:port``, or over the connected ``sock``), with
    TLS through :func:`start_tls` when ``ssl_context`` is given."""
    loop = asyncio.get_running_loop()
    factory: Callable[[], asyncio.BaseProtocol] = protocol_factory if ssl_context is None else asyncio.Protocol
    if sock is not None:
        transport, protocol = await loop.create_connection(factory, sock=sock)
    else:
        assert host is not None and port is not None
        transport, protocol = await loop.create_connection(factory, host, port)
    if ssl_context is None:
        return transport, cast(P, protocol)
    mine = protocol_factory()
    tls = await start_tls(transport, mine, ssl_context, server_hostname)
    if tls is None:
        raise ConnectionResetError("the connection closed during the TLS handshake")
    return tls, mine
