"""One HTTP/1.1 connection to the API server, used by one exchange at a time.

In: request heads as bytes (built by :mod:`kproxy.policy.request_head`) and request
bodies as chunks, written by the proxy. Out: the response head (status and its raw
header lines, kept as bytes: the relay forwards them) and body chunks as they arrive.

Why not ``aiohttp.ClientSession``: per-request object construction there costs more
than the whole proxy budget, and its defaults alter traffic (total timeout,
decompression, added headers). Here a connection is an asyncio protocol with an
httptools response parser; bodies stream in both directions with backpressure (the
reading side pauses the socket once ``_HIGH_WATER`` bytes wait for the client; the
writing side honours ``pause_writing``). Over TLS, the socket is read a bounded read at
a time (:mod:`kproxy.upstream.tls_reads`, ``docs/upstream-connections.md`` §7).

Two ways to wait for an answer: ``await response_head()`` / ``read_body()`` (the
ordinary path), or a *listener* (:meth:`UpstreamConnection.listen`) called from the
protocol's callbacks once a head is in, on an error and at the end — how the fast path
answers a request with no coroutine.

Faults are reported, never papered over, as Go's transport reports them: a head that
does not start with its status line (an empty line before it, or after a
``100 Continue``) or passes 10 MiB (``MaxResponseHeaderBytes``' default) is a malformed
response; an answer cut short (``Content-Length`` not reached, chunked without its last
chunk) fails the reader after what did arrive; bytes that arrive when no answer is
expected (after a complete one, or on an idle pooled connection) make the connection
unusable, and it is closed — Go's "Unsolicited response received on idle HTTP channel".
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable
from typing import cast

import httptools

from kproxy.errors import UpstreamError, fresh
from kproxy.log import log, log_throttled
from kproxy.metrics import tally
from kproxy.waiters import wake

__all__ = ["MAX_RESPONSE_HEAD", "STREAM_PIECE", "Listener", "ResponseHead", "UpstreamConnection"]

# Flow control towards the API server: reading pauses with this much waiting for the
# client, and resumes below the low mark. Small, so that a slow client costs little.
_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024
# TLS: encrypted bytes the TLS layer keeps below us before it stops reading the socket
# (uvloop's default: 256 KiB), in OpenSSL's memory BIO, which keeps the size it grew to.
# With reading paused for a slow client this is what waits, plus one socket read
# (kproxy.upstream.tls_reads.SOCKET_READ).
_TLS_PENDING = 16 * 1024
# What the relay passes on at once: a slow client's buffer holds about this much.
STREAM_PIECE = 64 * 1024
# Go's Transport.MaxResponseHeaderBytes default (net/http transport.go, 10 << 20).
MAX_RESPONSE_HEAD = 10 << 20
_MALFORMED = "malformed HTTP response from the API server: "

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
_CONNECTION = re.compile(rb"^connection[ \t]*:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


class _Nothing:
    """The listener of :data:`_NO_PARSER`."""


# What a closed connection holds instead of its parser.
_NO_PARSER = httptools.HttpResponseParser(_Nothing())


class _Unsolicited(Exception):
    """Bytes the API server sent when no answer was expected."""


class _Malformed(Exception):
    """A head llhttp accepts but Go's ``http.ReadResponse`` does not."""


class UpstreamConnection(asyncio.Protocol):
    """One connection to the API server. Used by one request at a time."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._collected: list[bytes] = []  # bytes since the response began, until its head ends
        self._collecting = True
        self._head_size = 0  # of what was collected, while the head is incomplete
        self._head: ResponseHead | None = None
        self._head_waiter: asyncio.Future[ResponseHead] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._skip = 0  # bytes of the first part of _body already handed out (_take)
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
        self.error: UpstreamError | None = None
        self.got_bytes = False
        self.reused = False
        self.idle_since = 0.0
        self.generation = 0  # of the client certificate it was made with (TLSSource)

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but behaves as one.
        self.transport = cast(asyncio.Transport, transport)
        tally.upstream_connections += 1
        limits = getattr(transport, "set_read_buffer_limits", None)
        if limits is not None:
            limits(high=_TLS_PENDING)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self._raw:
            self.on_body(data)
            return
        if self._complete:  # no answer is due
            self._unsolicited(data)
            return
        if self._collecting:
            self._collected.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # a 101: its tail was kept when its head ended (on_headers_complete)
        except httptools.HttpParserError as exc:
            self._parse_error(exc, data)
        if self._collecting and self.error is None:
            # A head split across reads (rare: counted only then).
            self._head_size = (self._head_size if len(self._collected) > 1 else 0) + len(data)
            if self._head_size > MAX_RESPONSE_HEAD:
                # Go's transport: "net/http: server response headers exceeded N bytes; aborted".
                self._fail(
                    UpstreamError(f"the API server's response headers exceeded {MAX_RESPONSE_HEAD} bytes", "protocol")
                )
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
        # Nothing more will come: let go of the parser, whose callbacks are this
        # object's methods, so that refcounting frees the connection now — TLS state and
        # buffers included — rather than the cycle collector some time later.
        self._parser = _NO_PARSER
        self.on_resume_writing = None

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
        # No on_header (nor on_message_begin) callback: llhttp then skips a call into
        # Python per header. The head's bytes are cut from what arrived instead.
        if self._complete:
            raise _Unsolicited()  # a second answer behind a complete one, in the same read
        collected = self._collected
        data = collected[0] if len(collected) == 1 else b"".join(collected)
        if data[0] != 72:  # not "HTTP/": llhttp accepted a CR or LF first
            # llhttp skips empty lines before a status line; Go's http.ReadResponse does
            # not ("malformed HTTP response \"\""): relaying it would double the head.
            raise _Malformed("an empty line before the status line")
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
        no_body = self._no_body
        keep_alive = _keep_alive(self._parser.get_http_version(), raw) if no_body else self._parser.should_keep_alive()
        head = ResponseHead(status, raw, keep_alive)
        self._head = head
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(head)
        if status == 101:
            # What follows belongs to the upgraded protocol: its first bytes, and later
            # reads (buffered until the relay switches over), are never parsed.
            self._upgrade_tail = rest
            self._raw = True
            self._finish()
        elif no_body:
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self._complete and not self._raw:
            raise _Unsolicited()  # a body after a HEAD answer that ended with its head
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
        if self._body:  # nothing of an earlier exchange belongs to this one
            self._body.clear()
            self._buffered = 0
            self._skip = 0

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:  # (None once the connection is gone: nowhere to write)
            transport.write(data)

    async def drain(self) -> None:
        if not self.closed and self._write_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
        if self.closed:  # before, or while waiting: what is written goes nowhere
            raise self.failure()

    async def response_head(self) -> ResponseHead:
        if self._head is None:
            if self.error is not None:
                raise self.failure()
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
        if self._skip:  # (after pieces handed out by read_body)
            body[0] = body[0][self._skip :]
            self._skip = 0
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self._buffered = 0
        if self._reading_paused:
            self._resume_reading()
        return data

    async def read_body(self, limit: int = 0) -> bytes:
        """The next body chunk(s), at most ``limit`` bytes if given; ``b""`` at the end
        of the response. What is left over stays buffered, and reading from the API
        server stays paused until little is: a slow client holds back the upstream
        instead of kproxy's memory holding the answer."""
        while not self._body:
            if self._complete:
                return b""
            if self.error is not None:
                raise self.failure()
            self._body_waiter = self._loop.create_future()
            await self._body_waiter
        if limit and self._buffered > limit:
            return self._take(limit)
        return self.take_buffered_body()

    def _take(self, limit: int) -> bytes:
        """``limit`` bytes of more than that buffered. A part is cut by moving
        ``_skip`` along it, so that handing out a large read piece by piece copies each
        piece once, never what is left of the read."""
        body = self._body
        part = body[0]
        skip = self._skip
        if len(part) - skip >= limit:
            piece = part[skip : skip + limit]
            skip += limit
        else:
            pieces = [part[skip:] if skip else part]
            size = len(part) - skip
            body.popleft()
            skip = 0
            while size + len(body[0]) <= limit:
                part = body.popleft()
                pieces.append(part)
                size += len(part)
            skip = limit - size
            if skip:
                pieces.append(body[0][:skip])
            piece = b"".join(pieces)
        if skip == len(body[0]):
            body.popleft()
            skip = 0
        self._skip = skip
        self._buffered -= limit
        if self._reading_paused:
            self._resume_reading()
        return piece

    def switch_to_raw(self) -> bytes:
        """After a 101: later bytes are the upgraded protocol's, read with ``read_body``.

        Returns the bytes that arrived together with the 101 head.
        """
        self._raw = True
        self._complete = False
        tail = self._upgrade_tail
        self._upgrade_tail = b""
        return tail

    def failure(self) -> UpstreamError:
        """What went wrong, as a new exception to raise (:func:`kproxy.errors.fresh`)."""
        error = self.error
        if error is None:
            return UpstreamError("the API server closed the connection", "reset")
        return fresh(error)

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

    def _fail(self, exc: UpstreamError) -> None:
        self.error = exc
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.failure())
        self._wake_body()

    def _wake_body(self) -> None:
        waiter, self._body_waiter = self._body_waiter, None
        wake(waiter)

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        wake(waiter)

    def _parse_error(self, exc: httptools.HttpParserError, data: bytes) -> None:
        if self.error is not None:
            return  # failed already (llhttp stays in its error state): the connection is closing
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else None
        if isinstance(cause, _Unsolicited):
            self._unsolicited(data)  # more bytes behind a complete answer: it stands, the connection does not
            return
        head = self._head
        if cause is None and head is not None and head.status == 101:
            # A 101 without "Connection: Upgrade" is reported as an error once its head
            # is in; it is an upgrade all the same, as for Go's reverse proxy.
            return
        if cause is not None and not isinstance(cause, _Malformed):
            log.error("internal error parsing a response from the API server", exc_info=cause)
        self._fail(UpstreamError(_MALFORMED + str(cause or exc), "protocol"))
        self.close()

    def _unsolicited(self, data: bytes) -> None:
        """Bytes when no answer is due: whatever they are, this connection's framing can
        no longer be trusted. Go's transport closes it the same way (and logs it)."""
        log_throttled(
            "upstream-unsolicited",
            logging.WARNING,
            "Unsolicited bytes from the API server when no response was due (%r...): closing that connection",
            data[:40],
        )
        self.close()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._buffered < _LOW_WATER and self.transport:
            self._reading_paused = False
            if not self.closed:
                self.transport.resume_reading()


def _keep_alive(version: str, raw: bytes) -> bool:
    """Whether a connection stays open after an answer without a body (a HEAD's), when
    llhttp cannot tell: it does not know the request was HEAD, so an answer without
    Content-Length looks to it as if its body ran to the close. RFC 9112 §9.3."""
    tokens = {t.strip().lower() for match in _CONNECTION.finditer(raw) for t in match.group(1).split(b",")}
    if version == "1.1":
        return b"close" not in tokens
    return b"keep-alive" in tokens and b"close" not in tokens


def _framed_by_eof(status: int, raw: bytes) -> bool:
    # RFC 9112 §6.3: without Content-Length or chunked coding, the body runs to the close.
    if status in (204, 304) or status < 200:
        return False
    return _FRAMED.search(raw) is None
