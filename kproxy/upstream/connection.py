"""One HTTP/1.1 connection to the API server, used by one exchange at a time.

In: request heads as bytes (built by :mod:`kproxy.policy.request_head`) and request
bodies as chunks, written by the proxy. Out: the response head (status and its raw
header lines, kept as bytes: the relay forwards them) and body chunks as they arrive.

Why not ``aiohttp.ClientSession``: per-request object construction there costs more
than the whole proxy budget, and its defaults alter traffic (total timeout,
decompression, added headers). Here a connection is an asyncio protocol with an
httptools response parser; bodies stream in both directions with backpressure (the
reading side pauses the socket once ``_HIGH_WATER`` bytes wait for the client; the
writing side honours ``pause_writing``).

Two ways to wait for an answer: ``await response_head()`` / ``read_body()`` (the
ordinary path), or a *listener* (:meth:`UpstreamConnection.listen`) called from the
protocol's callbacks once a head is in, on an error and at the end — how the fast path
answers a request with no coroutine.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable
from typing import cast

import httptools

from kproxy.errors import UpstreamError
from kproxy.metrics import tally
from kproxy.waiters import wake

__all__ = ["Listener", "ResponseHead", "UpstreamConnection"]

_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024

Listener = Callable[[], None]


class ResponseHead:
    """A response head; ``raw`` keeps its header lines as received (CRLF-ended): the
    relay forwards the bytes."""

    __slots__ = ("keep_alive", "raw", "status")

    def __init__(self, status: int, raw: bytes, keep_alive: bool) -> None:
        self.status = status
        self.raw = raw
        self.keep_alive = keep_alive


_FRAMED = re.compile(rb"^(?:content-length[ \t]*:|transfer-encoding[ \t]*:[^\n]*chunked)", re.IGNORECASE | re.MULTILINE)


class UpstreamConnection(asyncio.Protocol):
    """One connection to the API server. Used by one request at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._collected: list[bytes] = []  # bytes since the response began, until its head ends
        self._collecting = True
        self._head: ResponseHead | None = None
        self._head_waiter: asyncio.Future[ResponseHead] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._body_waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._no_body = False
        self._raw = False
        self._upgrade_tail = b""
        self.on_resume_writing: Callable[[], None] | None = None
        self._listener: Listener | None = None  # see listen()
        self.closed = False
        self.error: Exception | None = None
        self.got_bytes = False
        self.reused = False
        self.idle_since = 0.0
        self.generation = 0  # of the client certificate it was made with (TLSSource)

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but behaves as one.
        self.transport = cast(asyncio.Transport, transport)
        tally.upstream_connections += 1

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self._raw:
            self.on_body(data)
            return
        if self._collecting:
            self._collected.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # A 101: whatever follows the head belongs to the upgraded protocol.
            offset = exc.args[0] if exc.args else len(data)
            self._upgrade_tail = data[offset:]
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed HTTP response from the API server: {exc}", "protocol"))
            self.close()
        listener = self._listener
        if listener is not None and (self._head is not None or self.error is not None):
            if self._complete or self.error is not None:
                self._listener = None  # the exchange is over: told once, then forgotten
            listener()

    def eof_received(self) -> bool | None:
        if self._raw:
            self._finish()
            # Keep our write side open, the client may still be sending. TLS cannot
            # half-close (asyncio warns and ignores True there), so only for plain TCP.
            transport = self.transport
            return transport is None or transport.get_extra_info("sslcontext") is None
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        tally.upstream_connections -= 1
        if not self._complete:
            head = self._head
            if self._raw or (head is not None and _framed_by_eof(head.status, head.raw)):
                # Upgraded streams, and responses framed by the connection's end (no
                # Content-Length, no chunking), end here.
                self._finish()
            else:
                self._fail(
                    UpstreamError("the API server closed the connection before the response was complete", "reset")
                )
        self._wake_drain()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()
        if self.on_resume_writing is not None:
            self.on_resume_writing()

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    # -- httptools callbacks ----------------------------------------------------------

    def on_headers_complete(self) -> None:
        # No on_header callback: llhttp then skips a call into Python per header. The
        # head's bytes are cut from what arrived instead.
        collected = self._collected
        data = collected[0] if len(collected) == 1 else b"".join(collected)
        # llhttp insists on CRLF line ends, so the head ends at the first empty line.
        end = data.find(b"\r\n\r\n")
        first = data.find(b"\r\n") + 2
        raw = data[first : end + 2] if first <= end else b""
        rest = data[end + 4 :]
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # Interim responses (100 Continue, 103 Early Hints) are not relayed.
            self._collected = [rest] if rest else []
            return
        self._collecting = False
        self._collected = []
        head = ResponseHead(status, raw, self._parser.should_keep_alive())
        self._head = head
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(head)
        if self._no_body or status == 101:
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_body()

    def on_message_complete(self) -> None:
        if self._head is None:  # the end of an interim response
            return
        self._finish()

    # -- used by the relay -----------------------------------------------------------

    def start(self, no_body: bool) -> None:
        """Prepare for a new exchange; ``no_body`` for HEAD, whose response has none."""
        self._collected = []
        self._collecting = True
        self._head = None
        self._head_waiter = None
        self._complete = False
        self._no_body = no_body
        self.error = None
        self.got_bytes = False
        self._upgrade_tail = b""

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise self.error or UpstreamError("the API server closed the connection", "reset")
        if self._write_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    async def response_head(self) -> ResponseHead:
        if self._head is None:
            if self.error is not None:
                raise self.error
            self._head_waiter = self._loop.create_future()
            await self._head_waiter
        assert self._head is not None
        return self._head

    @property
    def head(self) -> ResponseHead | None:
        return self._head

    @property
    def complete(self) -> bool:
        return self._complete

    def take_buffered_body(self) -> bytes:
        """Everything received so far; for small responses that arrived whole."""
        body = self._body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self._buffered = 0
        if self._reading_paused:
            self._resume_reading()
        return data

    async def read_body(self) -> bytes:
        """The next body chunk(s); ``b""`` at the end of the response."""
        while not self._body:
            if self._complete:
                return b""
            if self.error is not None:
                raise self.error
            self._body_waiter = self._loop.create_future()
            await self._body_waiter
        return self.take_buffered_body()

    def switch_to_raw(self) -> bytes:
        """After a 101: later bytes are the upgraded protocol's, read with ``read_body``.

        Returns the bytes that arrived together with the 101 head.
        """
        self._raw = True
        self._complete = False
        tail = self._upgrade_tail
        self._upgrade_tail = b""
        return tail

    def listen(self, listener: Listener | None) -> None:
        """Call ``listener`` after received bytes were handled once the head is in, on
        an error and at the end of the connection; after it was told the exchange is
        over (complete, failed or closed) it is forgotten. None: stop now. The listener
        reads :attr:`head`, :attr:`complete`, :attr:`error` and :attr:`closed` to see
        where the exchange stands."""
        self._listener = listener

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    # -- internals --------------------------------------------------------------------

    def _finish(self) -> None:
        self._complete = True
        if self._no_body:
            # llhttp does not know the request was HEAD and would wait for the body the
            # Content-Length announces; a fresh parser reads the next response cleanly.
            self._parser = httptools.HttpResponseParser(self)
        self._wake_body()

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._wake_body()

    def _wake_body(self) -> None:
        waiter, self._body_waiter = self._body_waiter, None
        wake(waiter)

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        wake(waiter)

    def _resume_reading(self) -> None:
        if self._reading_paused and self._buffered < _LOW_WATER and self.transport:
            self._reading_paused = False
            if not self.closed:
                self.transport.resume_reading()


def _framed_by_eof(status: int, raw: bytes) -> bool:
    # RFC 9112 §6.3: without Content-Length or chunked coding, the body runs to the close.
    if status in (204, 304) or status < 200:
        return False
    return _FRAMED.search(raw) is None
