"""kproxy's TLS listener: who may connect is decided before the handshake, which certificate
to show when it starts.

In: the bound listening socket, the HTTP server's protocol factory, the
:class:`~kproxy.config.serving_tls.ServingTLS` settings and a door check (the peer's
address → admitted or not: ``--authorized-ip-ranges``). Out: :class:`TLSListener`, an
``asyncio.AbstractServer`` that hands each connection to the HTTP server once its TLS
handshake is done, and :class:`ServingCertificates`, the context in force, replaced on
reload.

One connection's way in (``docs/sharing.md`` §2, §6, §7):

1. accepted (by :class:`~kproxy.server.accept.Acceptor`, which pauses when descriptors
   run out): a client outside the authorized ranges is closed at once, before a byte of
   the handshake is read (its trusted front proxies are admitted; their clients are
   checked per request);
2. its first bytes are peeked at, not read: a TLS handshake record goes on; plain HTTP
   (``GET /``, ``POST ``...) gets Go's answer, ``400 Client sent an HTTP request to an HTTPS
   server.``, and the connection ends; anything else is closed;
3. the handshake, with the context in force *now* (a reload changes what new
   connections get; open connections keep theirs), bounded by :data:`HANDSHAKE_TIMEOUT`;
   a failure is logged at ``-v=2`` as Go logs it, ``TLS handshake error from ADDR: ...``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import cast

from kproxy.config.serving_tls import Loaded, ServingTLS
from kproxy.errors import ConfigError
from kproxy.log import NOTICE, log
from kproxy.policy.gonet import join_host_port
from kproxy.server.accept import Acceptor

__all__ = ["HANDSHAKE_TIMEOUT", "ServingCertificates", "TLSListener", "looks_like_http"]

HANDSHAKE_TIMEOUT = 10.0  # s, from accept to the end of the handshake
_LINGER = 0.5  # s the plain-HTTP answer waits for the client to read it before closing
_TLS_HANDSHAKE_RECORD = 0x16
# Go's net/http: the answer to plain HTTP on a TLS port, and what looks like it
# (tlsRecordHeaderLooksLikeHTTP: the first 5 bytes).
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


def looks_like_http(first: bytes) -> bool:
    """Go's tlsRecordHeaderLooksLikeHTTP, on the first 5 bytes of a connection."""
    return first[:5] in _HTTP_STARTS


class ServingCertificates:
    """The server context in force, and its reload (file change or SIGHUP)."""

    def __init__(self, settings: ServingTLS) -> None:
        self.settings = settings
        self._loaded: Loaded = settings.first

    @property
    def context(self) -> ssl.SSLContext:
        return self._loaded.context

    def reload(self) -> bool:
        """Re-read the certificate, key and CA files; a pair (or CA) that does not load keeps
        the one in force and logs one line naming the file. Returns whether it changed."""
        try:
            loaded = self.settings.load()
        except ConfigError as exc:
            log.error("Keeping the TLS certificate in force: %s", exc)
            return False
        if loaded.fingerprint == self._loaded.fingerprint:
            return False  # touched, not changed
        self._loaded = loaded
        for warning in loaded.warnings:
            log.warning("%s", warning)
        log.log(
            NOTICE,
            "reloaded %s: new TLS connections use it, open ones keep theirs",
            ", ".join(self.settings.files),
        )
        return True


class TLSListener(asyncio.AbstractServer):
    """Serves TLS on ``sock`` (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        certificates: ServingCertificates,
        admits: Callable[[object], bool],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = sock
        self._factory = factory
        self._certificates = certificates
        self._admits = admits
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = self._loop.create_future()
        # Accepting, and pausing when descriptors run out, as on a plain listener.
        self._acceptor = Acceptor(self._loop, sock, factory, self._handoff)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._sock is not None else ()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._sock is not None

    async def start_serving(self) -> None:
        if self._sock is not None:
            self._acceptor.start()

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.shield(self._closed)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._acceptor.close()
        sock.close()
        for task in self._pending:
            task.cancel()
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending))

    # -- accepting ------------------------------------------------------------------

    def pause(self, cause: str) -> None:
        """Stop accepting for a moment (see :meth:`kproxy.server.accept.Acceptor.pause`)."""
        self._acceptor.pause(cause)

    def _handoff(self, conn: socket.socket, peer: object) -> None:
        if not self._admits(peer):
            conn.close()  # before a byte of its handshake is read
            return
        task = self._loop.create_task(self._serve(conn, peer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _serve(self, conn: socket.socket, peer: object) -> None:
        """Peek, then hand the connection to the HTTP server over TLS, or turn it away."""
        deadline = self._loop.time() + HANDSHAKE_TIMEOUT
        handed = False  # to the loop, which owns the socket from then on (and closes it on failure)
        try:
            first = await _peek(self._loop, conn, deadline)
            if first[:1] != bytes((_TLS_HANDSHAKE_RECORD,)):
                if not looks_like_http(first):
                    raise _NotTLS("the first bytes are not a TLS handshake" if first else "closed before the handshake")
                handed = True
                await self._loop.connect_accepted_socket(_PlainHTTPRefusal, conn)
                return
            handed = True
            await self._loop.connect_accepted_socket(
                self._factory,
                conn,
                ssl=self._certificates.context,
                ssl_handshake_timeout=max(0.1, deadline - self._loop.time()),
            )
        except (OSError, TimeoutError, _NotTLS) as exc:
            log.info("TLS handshake error from %s: %s", _shown(peer), _reason(exc))
        finally:
            if not handed:
                conn.close()


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket, deadline: float) -> bytes:
    """The connection's first bytes, left unread: one byte if it is a TLS record, else up to
    five (Go's look at a record header); b"" if the client closed first."""
    done: asyncio.Future[bytes] = loop.create_future()
    fd = conn.fileno()

    def readable() -> None:
        try:
            data = conn.recv(5, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not done.done() and (not data or data[0] == _TLS_HANDSHAKE_RECORD or len(data) == 5):
            done.set_result(data)

    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(done, max(0.1, deadline - loop.time()))
    finally:
        loop.remove_reader(fd)


class _NotTLS(Exception):
    """A connection that does not start with a TLS handshake."""


class _PlainHTTPRefusal(asyncio.Protocol):
    """Go's answer to plain HTTP on a TLS port; the request is read and dropped, not served."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = self._transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)
        transport.write(PLAIN_HTTP_ANSWER)
        # Our FIN first, then close a moment later: closing with the request unread
        # would reset the connection and could lose the answer.
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self._transport.close()
        return False


def _shown(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return join_host_port(str(peer[0]), str(peer[1]))
    return str(peer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _NotTLS):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or (exc.args[-1] if exc.args else "")
        return str(reason).lower().replace("_", " ")
    return (exc.strerror or str(exc)).lower() if isinstance(exc, OSError) else str(exc)
