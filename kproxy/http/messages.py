"""Requests as the server hands them to handlers, and what a handler may ask of the
connection a request came on.

A :class:`Request` is its raw head — the target exactly as sent, the method, the version,
the header lines as bytes — plus a :class:`Body` that streams in as the client sends it.
Headers become strings only when someone asks (:attr:`Request.headers`): the proxy
relays bytes and rarely needs them.

:class:`Connection` is the contract between the server and whoever answers requests
(kproxy's proxy layer, or a test): writing a complete answer or a streamed one, taking
over the raw byte stream after an upgrade, and the fast path's two hand-backs. The
server's :class:`~kproxy.http.connection.ClientConnection` is the one implementation;
unit tests of handlers may bring their own.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from kproxy.http.flow import ReadGate
from kproxy.waiters import wake

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

    from kproxy.http.responses import Answer

__all__ = ["Attachment", "Body", "BrokenBody", "Connection", "RawSink", "Request", "Resume"]

# Request bodies: stop reading from the client when this much waits for the upstream.
BODY_HIGH_WATER = 256 * 1024

# What is left of an exchange the fast path could not finish (Connection.fast_fallback).
Resume = Callable[[], Awaitable["Answer"]]


class BrokenBody(ConnectionError):
    """What a handler raises when the body it forwards broke off (:attr:`Body.broken`):
    the client left, or sent what cannot be parsed, which the connection answers
    itself. Whoever forwards a body must make sure the other side never sees it
    complete; the connection then sends no answer of the handler's."""


class RawSink(Protocol):
    """Receives a connection's bytes after an upgrade (:meth:`Connection.take_stream`)."""

    def feed_data(self, data: bytes) -> None: ...

    def feed_eof(self) -> None: ...


class Attachment(Protocol):
    """What a handler keeps about one connection across its requests (the proxy's fast
    path keeps the upstream exchange in flight and the last head it built)."""

    def client_gone(self) -> None:
        """The client's connection is lost: release whatever serves it, at once."""


class Connection(Protocol):
    """What a handler may use of the connection its request came on."""

    transport: asyncio.Transport | None
    peer: object  # the socket's peer address: (host, port, ...) for TCP, "" or None for unix
    attachment: Attachment | None
    reading: ReadGate

    @property
    def write_paused(self) -> bool: ...

    async def drain(self) -> None: ...

    def send_complete(
        self,
        request: Request | None,
        status: int,
        lines: bytes,
        body: bytes,
        *,
        length: int | None,
        has_date: bool,
        close: bool = False,
    ) -> None:
        """Head and whole body in one write. ``lines``: header lines without framing
        (the request's ``added_lines`` follow them); ``length``: a Content-Length the
        handler set (kept for HEAD answers)."""

    def send_head(
        self, request: Request, status: int, lines: bytes, *, length: int | None, has_date: bool, close: bool = False
    ) -> None:
        """The head of a streamed answer (the request's ``added_lines`` included); its
        framing is chosen here."""

    def send_body(self, data: bytes) -> None: ...

    def end_body(self) -> None: ...

    def take_stream(self, sink: RawSink) -> None:
        """From now on the client's bytes go to ``sink`` untouched (an upgrade)."""

    def write_raw(self, data: bytes) -> None:
        """Bytes as they are: a relayed 101 head, then the upgraded stream."""

    def fast_done(self) -> None:
        """A fast exchange wrote its whole answer (see HTTPServer's ``fast``)."""

    def fast_fallback(self, request: Request, resume: Resume | None) -> None:
        """The fast path cannot finish ``request``: the connection's task takes over with
        ``resume`` (what is left of the exchange) or, if None, the whole handler."""


class Body:
    """A request body as it arrives; reading pauses the client when it runs ahead."""

    __slots__ = ("_chunks", "_eof", "_gate", "_size", "_waiter", "broken", "received")

    def __init__(self, gate: ReadGate) -> None:
        self._gate = gate
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self.received = 0  # bytes of the body so far, all told
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self.broken = False  # it ended without completing: the client left or broke it off

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self.received += len(data)
        if self._size > BODY_HIGH_WATER:
            self._gate.pause_for(self)
        self._wake()

    def feed_eof(self) -> None:
        """The body ended — completely, or because the client left or broke it off."""
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        wake(waiter)

    async def readany(self) -> bytes:
        """The next chunk(s) of the body; ``b""`` at its end — see :attr:`broken` to
        tell a body that completed from one that broke off."""
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        self._gate.resume_for(self)
        return data

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)


class Request:
    """One request head as the client sent it, plus its body stream."""

    __slots__ = (
        "_body",
        "_headers",
        "added_lines",
        "complete",
        "keep_alive",
        "method",
        "note",
        "protocol",
        "raw_headers",
        "raw_path",
        "transport",
        "upgraded",
        "version",
    )

    def __init__(
        self,
        protocol: Connection,
        raw_path: str,
        method: str,
        version: tuple[int, int],
        raw_headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.transport: asyncio.Transport | None = protocol.transport
        self.raw_path = raw_path  # the request target, exactly as sent
        self.method = method
        self.version = version
        self.raw_headers = raw_headers
        self.keep_alive = keep_alive
        self.upgraded = False  # llhttp saw an upgrade: what follows the head is not HTTP
        self.complete = False  # the whole message, body included, has arrived
        self.note: object = None  # what the handler keeps about the request (the proxy: its access-log record)
        # Header lines (CRLF-ended) the connection adds to whatever answer this request
        # gets, the handler's own and relayed ones alike (kproxy: a CORS grant).
        self.added_lines = b""
        self._body: Body | None = None  # made when a body arrives or someone reads it
        self._headers: CIMultiDictProxy[str] | None = None

    @property
    def content(self) -> Body:
        body = self._body
        if body is None:
            body = self._body = Body(self.protocol.reading)
            if self.complete:
                body.feed_eof()
        return body

    @property
    def body_received(self) -> int:
        """How many bytes of the body have arrived so far."""
        return 0 if self._body is None else self._body.received

    @property
    def body_done(self) -> bool:
        """Whether nothing of the body is left unread (so the next request can follow)."""
        return self.complete if self._body is None else self._body.at_eof

    def feed(self, data: bytes) -> None:
        self.content.feed(data)

    def end(self) -> None:
        self.complete = True
        if self._body is not None:
            self._body.feed_eof()

    def cut(self) -> None:
        """The body stops here without completing (the client left or broke it off)."""
        body = self.content
        if not self.complete:
            body.broken = True
        body.feed_eof()

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            # Imported by the first request that asks (a proxied GET never does): it and
            # the platform module it loads are ~13 M instructions of start-up (docs/startup.md §6).
            from multidict import CIMultiDict, CIMultiDictProxy

            self._headers = CIMultiDictProxy(
                CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in self.raw_headers)
            )
        return self._headers

    def header(self, lname: bytes) -> bytes | None:
        """The first value of header ``lname`` (lowercase), as bytes; cheap."""
        for name, value in self.raw_headers:
            if len(name) == len(lname) and name.lower() == lname:
                return value
        return None

    @property
    def path(self) -> str:
        return urllib.parse.unquote(self.raw_path.partition("?")[0])

    @property
    def remote(self) -> str | None:
        peer = self.protocol.peer
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    async def read(self) -> bytes:
        return await self.content.read()
