"""kproxy's client-facing HTTP/1.1 server: one asyncio protocol per connection.

In: bytes from clients, parsed by httptools (llhttp, the parser Node.js uses).
Out: :class:`Request` objects handed to the pipeline one at a time per connection, and
responses written back with the framing HTTP/1.1 needs (Content-Length, chunked, or
the connection's end), keep-alive, pipelining, ``Expect``, upgrades and a graceful
shutdown.

Why not aiohttp's server: per request it builds a request object with URL and header
multidicts, a response object, a header multidict again and a writer; together that
cost more CPU than all of kproxy's own work (benchmarks/README.md). Here a request is
its raw head, headers stay bytes until someone asks for them as strings, and a relayed
response goes out as the upstream's header bytes, filtered, in one write with its body.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from kproxy.waiters import wake

__all__ = ["Answer", "FastPath", "HTTPServer", "Request", "Response", "Sent", "StreamResponse", "status_line"]

log = logging.getLogger("kproxy")

# Longest request line or header line; kube clients send long bearer tokens and
# impersonation lists. Go's server allows 1 MiB of headers in all.
MAX_LINE = 64 * 1024
MAX_HEAD = 1024 * 1024
# Request bodies: stop reading from the client when this much waits for the upstream.
_HIGH_WATER = 256 * 1024
_MAX_PIPELINED = 16
_LINGER = 0.5  # s; Go's rstAvoidanceDelay

_REASONS = {s.value: s.phrase.encode() for s in http.HTTPStatus}
_NO_BODY_STATUS = frozenset({204, 304})


_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d status code %d\r\n" % (status, status)
    return line


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """RFC 9110 §5.6.7 IMF-fixdate, independent of the locale (and of email.utils,
    which costs start-up time)."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class _Clock:
    """The ``Date`` header, formatted once a second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + http_date(now).encode() + b"\r\n"
        return self._line


_clock = _Clock()


class Body:
    """A request body as it arrives; reading pauses the client when it runs ahead."""

    __slots__ = ("_chunks", "_conn", "_eof", "_size", "_waiter")

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER:
            self._conn.pause_reading_for(self)
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self) -> None:
        # The client left mid-body: readers see the end, the relay sees the connection go.
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        wake(waiter)

    async def readany(self) -> bytes:
        """The next chunk(s) of the body; ``b""`` at its end."""
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        self._conn.resume_reading_for(self)
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
        "_extra",
        "_headers",
        "complete",
        "keep_alive",
        "method",
        "protocol",
        "raw_headers",
        "raw_path",
        "resume",
        "transport",
        "upgraded",
        "version",
    )

    def __init__(
        self,
        protocol: ClientConnection,
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
        self._body: Body | None = None  # made when a body arrives or someone reads it
        # Set when a fast exchange hands the rest of its work to the connection's task;
        # the handler runs it in place of the pipeline.
        self.resume: Callable[[], Awaitable[Answer]] | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._extra: dict[str, Any] | None = None

    @property
    def content(self) -> Body:
        body = self._body
        if body is None:
            body = self._body = Body(self.protocol)
            if self.complete:
                body.feed_eof()
        return body

    @property
    def body_done(self) -> bool:
        """Whether nothing of the body is left unread (so the next request can follow)."""
        return self.complete if self._body is None else self._body.at_eof

    def _feed(self, data: bytes) -> None:
        self.content.feed(data)

    def _end(self) -> None:
        self.complete = True
        if self._body is not None:
            self._body.feed_eof()

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
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

    def get(self, key: str, default: Any = None) -> Any:
        return default if self._extra is None else self._extra.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._extra is None:
            self._extra = {}
        self._extra[key] = value


HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | None


def _header_bytes(headers: HeadersLike) -> tuple[bytes, int | None, bool]:
    """(header lines, Content-Length if given, whether Date was given)."""
    if headers is None:
        return b"", None, False
    items = headers.items() if isinstance(headers, Mapping) else headers
    parts = []
    length = None
    has_date = False
    for name, value in items:
        lname = name.lower()
        if lname == "content-length":
            length = int(value)
            continue
        if lname in ("transfer-encoding", "connection"):
            continue  # framing is the connection's business
        if lname == "date":
            has_date = True
        parts.append(f"{name}: {value}\r\n".encode("utf-8", "surrogateescape"))
    return b"".join(parts), length, has_date


class Response:
    """A complete answer: status, headers and the whole body, sent in one write."""

    __slots__ = ("body", "close", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        *,
        body: bytes | None = None,
        text: str | None = None,
        headers: HeadersLike = None,
        content_type: str | None = None,
        charset: str | None = None,
    ) -> None:
        self.status = status
        self.headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        if text is not None:
            body = text.encode(charset or "utf-8")
            if content_type is None:
                content_type = "text/plain"
            content_type += f"; charset={charset or 'utf-8'}"
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))
        self.body = body or b""
        self.close = False

    def force_close(self) -> None:
        self.close = True

    def send(self, request: Request) -> None:
        lines, length, has_date = _header_bytes(self.headers)
        request.protocol.send_complete(
            request, self.status, lines, self.body, length=length, has_date=has_date, close=self.close
        )


class StreamResponse:
    """A streamed answer: ``await prepare(request)``, ``write`` chunks, ``write_eof``."""

    def __init__(self, status: int = 200, *, headers: HeadersLike = None) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = (
            list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        )
        self.close = False
        self.prepared = False
        self._request: Request | None = None

    def force_close(self) -> None:
        self.close = True

    async def prepare(self, request: Request) -> StreamResponse:
        if not self.prepared:
            self.prepared = True
            self._request = request
            lines, length, has_date = _header_bytes(self.headers)
            request.protocol.send_head(request, self.status, lines, length=length, has_date=has_date, close=self.close)
        return self

    async def write(self, data: bytes) -> None:
        assert self._request is not None
        conn = self._request.protocol
        conn.send_body(data)
        if conn.write_paused:
            await conn.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        assert self._request is not None
        conn = self._request.protocol
        if data:
            conn.send_body(data)
        conn.end_body()
        if conn.write_paused:
            await conn.drain()


class Sent:
    """An answer the handler wrote itself through the connection (the relay's way)."""

    __slots__ = ("status",)
    prepared = True

    def __init__(self, status: int) -> None:
        self.status = status


Answer = Response | StreamResponse | Sent
Handler = Callable[[Request], Awaitable[Answer]]
# Takes a complete request without a coroutine, or declines (False): see ClientConnection.
FastPath = Callable[[Request], bool]


class _TooLarge(Exception):
    pass


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, runs them one at a time, writes answers."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._loop = server.loop
        self._fast = server.fast
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: collections.deque[Request | tuple[int, str]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._started = False  # the current answer's head is out
        self._closing = False
        self._lost = False
        # The request being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._parsing: Request | None = None
        # The response being written.
        self._chunked = False
        self._head_only = False
        self._keep = True
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused_by: set[object] = set()
        self._raw_sink: Any = None
        self._raw_pending: list[bytes] = []
        self._raw_eof = False
        self.upstream_in_flight: Any = None  # a fast exchange's upstream connection
        self.relay_memo: Any = None  # the relay's, about the last request it sent for us
        self._discarding = False  # closing: our side is shut, the client's bytes are dropped

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")
        self._server.connections.add(self)
        self._task = self._loop.create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._server.forget(self)
        upstream = self.upstream_in_flight
        if upstream is not None:
            # A client that leaves releases its upstream at once, fast exchanges too.
            self.upstream_in_flight = None
            upstream.on_event = None
            upstream.abort()
        if self._parsing is not None:
            self._parsing.content.fail()
        for item in self._queue:
            if isinstance(item, Request):
                item.content.fail()
        if self._raw_sink is not None:
            self._raw_sink.feed_eof()
        else:
            self._raw_eof = True
        self._wake_drain()
        task = self._task
        if task is not None and not task.done():
            # A client that leaves releases its upstream at once.
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if self._raw_sink is not None:
            self._raw_sink.feed_data(data)
            return
        if self._parser is None:  # after an upgrade, before the handler took the stream
            self._raw_pending.append(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._parser = None  # type: ignore[assignment]
            if data[offset:]:
                self._raw_pending.append(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._reject(431, "")
            else:  # a bug of ours in a callback: say so, answer 500, end the connection
                log.error("internal error parsing a request", exc_info=exc.__context__ or exc)
                self._reject(500, "")
        except httptools.HttpParserError as exc:
            self._reject(400, str(exc))
        if self._queue and not self._busy:
            self._dispatch()

    def eof_received(self) -> bool | None:
        if self._discarding:
            return None  # the client has closed too: done
        if self._raw_sink is not None:
            self._raw_sink.feed_eof()
            return True  # the upgraded stream may still be answered
        if self._parser is None:
            self._raw_eof = True
            return True
        if self._parsing is not None:
            self._parsing.content.fail()
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            raise _TooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._head_size += size + 4
        if size > MAX_LINE or self._head_size > MAX_HEAD:
            raise _TooLarge()
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        request = Request(
            self,
            self._url.decode("latin-1"),
            _METHODS.get(method) or method.decode("latin-1"),
            _version(parser.get_http_version()),
            self._headers,
            parser.should_keep_alive(),
        )
        request.upgraded = parser.should_upgrade()
        self._parsing = request
        self._queue.append(request)
        if len(self._queue) > _MAX_PIPELINED:
            self.pause_reading_for(self._queue)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing._feed(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing._end()
            self._parsing = None

    # -- serving ------------------------------------------------------------------------

    def _reject(self, status: int, detail: str) -> None:
        # What cannot be parsed is answered after what came before, then the connection ends.
        self._parser = None  # type: ignore[assignment]
        if self._parsing is not None:
            self._parsing.content.fail()
            self._parsing = None
        self._queue.append((status, detail))
        if self.transport is not None:
            self.transport.pause_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        wake(waiter)

    def _dispatch(self) -> None:
        """Start the next request: by the fast path when it takes it, else on the task.

        The fast path runs a plain request/response on callbacks, with no task switch
        and no coroutine; it hands back with :meth:`fast_done` or :meth:`fast_fallback`.
        """
        if self._busy or not self._queue or self._lost:
            return
        item = self._queue[0]
        fast = self._fast
        if (
            fast is not None
            and type(item) is Request
            and item.complete
            and not item.upgraded
            and item.resume is None
            and not self._closing
        ):
            self._queue.popleft()
            self._busy = True
            self._keep = item.keep_alive
            self._started = False
            if fast(item):
                if self._reading_paused_by and len(self._queue) <= _MAX_PIPELINED // 2:
                    self.resume_reading_for(self._queue)
                return
            self._busy = False
            self._queue.appendleft(item)
        self._wake()

    def fast_done(self) -> None:
        """A fast exchange has written its whole answer."""
        self._busy = False
        self.upstream_in_flight = None
        if not self._keep or self._closing:
            self._wake()  # the task ends the connection (or serves what is queued first)
            return
        if self._queue:
            self._dispatch()

    def fast_fallback(self, request: Request, resume: Callable[[], Awaitable[Answer]] | None) -> None:
        """The fast path cannot finish ``request``: the task takes over, with ``resume``
        (what is left of the exchange) or, if None, the whole pipeline from the start."""
        self._busy = False
        request.resume = resume
        self._queue.appendleft(request)
        self._wake()

    async def _serve(self) -> None:
        handler = self._server.handler
        queue = self._queue
        try:
            while not self._lost:
                if self._started and not self._keep and not self._busy:
                    break  # the last answer (a fast exchange's) ended the connection
                if not queue or self._busy:  # busy: a fast exchange is on its way
                    if self._closing and not self._busy:
                        break
                    self._waiter = self._loop.create_future()
                    await self._waiter
                    continue
                item = queue.popleft()
                if self._reading_paused_by and len(queue) <= _MAX_PIPELINED // 2:
                    self.resume_reading_for(queue)
                if not isinstance(item, Request):
                    self._send_error(*item)
                    break
                self._busy = True
                self._keep = item.keep_alive and not item.upgraded
                self._started = False
                try:
                    answer = await handler(item)
                    if isinstance(answer, Response):
                        answer.send(item)
                    elif not answer.prepared:
                        assert isinstance(answer, StreamResponse)
                        await answer.prepare(item)
                        await answer.write_eof()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("internal error serving %s %s", item.method, item.raw_path[:200])
                    if self._started:
                        break  # the head is out: only cutting the connection tells the client
                    self._send_error(500, "")
                    break
                finally:
                    self._busy = False
                if not self._keep or self._lost or self._raw_sink is not None:
                    break
                if not item.body_done:
                    # An unread body: the next request's start is somewhere in it.
                    break
        except asyncio.CancelledError:
            pass
        finally:
            self._busy = False
            self._end_gently()

    def _end_gently(self) -> None:
        """Close after what is buffered has been sent, without a reset: like Go's
        closeWriteAndWait, send our FIN, then read and drop what the client may still
        send for a moment. Closing with unread bytes would make the kernel answer them
        with a reset, and the client could lose the answer it has not read yet."""
        transport = self.transport
        if transport is None or self._lost:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self._discarding = True
        self._parser = None  # type: ignore[assignment]
        self._reading_paused_by.clear()
        try:
            transport.write_eof()
            transport.resume_reading()
        except (OSError, RuntimeError):
            transport.close()
            return
        self._loop.call_later(_LINGER, transport.close)

    def _send_error(self, status: int, detail: str) -> None:
        if status == 431:
            body = b"431 Request Header Fields Too Large"
        elif status == 500:
            body = b"500 Internal Server Error"
        else:
            body = f"400 Bad Request: {detail}".encode() if detail else b"400 Bad Request"
        self._keep = False
        self.send_complete(
            None, status, b"Content-Type: text/plain; charset=utf-8\r\n", body, length=None, has_date=False, close=True
        )

    # -- writing responses --------------------------------------------------------------

    def _head(self, request: Request | None, status: int, lines: bytes, has_date: bool, close: bool) -> list[bytes]:
        if close or self._closing:
            self._keep = False
        parts = [status_line(status), lines]
        if not has_date:
            parts.append(_clock.line())
        if not self._keep:
            parts.append(b"Connection: close\r\n")
        elif request is not None and request.version < (1, 1):
            parts.append(b"Connection: keep-alive\r\n")
        return parts

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
        """Head and whole body in one write. ``lines``: header lines, framing excluded;
        ``length``: a Content-Length the handler set (kept for HEAD answers)."""
        head_only = request is not None and request.method == "HEAD"
        parts = self._head(request, status, lines, has_date, close)
        if status in _NO_BODY_STATUS or status < 200:
            parts.append(b"\r\n")
        else:
            parts += (b"Content-Length: %d\r\n\r\n" % (length if head_only and length is not None else len(body)),)
            if not head_only:
                parts.append(body)
        self._started = True
        if self.transport is not None and not self._lost:
            self.transport.write(b"".join(parts))

    def send_head(
        self, request: Request, status: int, lines: bytes, *, length: int | None, has_date: bool, close: bool = False
    ) -> None:
        """The head of a streamed answer; the body follows with send_body/end_body.
        ``lines``: header lines without framing, which is chosen here."""
        head_only = request.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        self._head_only = head_only
        framing = b""
        if length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif not head_only:
            if request.version >= (1, 1):
                framing = b"Transfer-Encoding: chunked\r\n"
            else:
                close = True  # HTTP/1.0 has no chunking: the body ends with the connection
        self._chunked = bool(framing) and length is None
        parts = self._head(request, status, lines, has_date, close)
        parts.append(framing)
        parts.append(b"\r\n")
        self._started = True
        if self.transport is not None and not self._lost:
            self.transport.write(b"".join(parts))

    def send_body(self, data: bytes) -> None:
        if self._head_only or not data or self.transport is None or self._lost:
            return
        if self._chunked:
            self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.transport.write(data)

    def end_body(self) -> None:
        if self._chunked and self.transport is not None and not self._lost:
            self._chunked = False
            self.transport.write(b"0\r\n\r\n")

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("the client closed the connection")
        if self._write_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        wake(waiter)

    def pause_reading_for(self, who: object) -> None:
        if not self._reading_paused_by and self.transport is not None and not self._lost:
            self.transport.pause_reading()
        self._reading_paused_by.add(id(who))

    def resume_reading_for(self, who: object) -> None:
        key = id(who)
        if key in self._reading_paused_by:
            self._reading_paused_by.discard(key)
            if not self._reading_paused_by and self.transport is not None and not self._lost:
                self.transport.resume_reading()

    # -- upgrades -----------------------------------------------------------------------

    def take_stream(self, sink: Any) -> None:
        """From now on the client's bytes go to ``sink.feed_data``/``feed_eof`` untouched."""
        self._parser = None  # type: ignore[assignment]
        self._keep = False
        self._raw_sink = sink
        self._reading_paused_by.clear()
        pending, self._raw_pending = self._raw_pending, []
        for data in pending:
            sink.feed_data(data)
        if self._raw_eof:
            sink.feed_eof()

    def write_raw(self, data: bytes) -> None:
        """Bytes as they are: a relayed 101 head, then the upgraded stream."""
        self._started = True
        if self.transport is not None and not self._lost:
            self.transport.write(data)

    # -- shutdown -----------------------------------------------------------------------

    def shut_down(self) -> None:
        """Finish the request in flight, if any, then close."""
        self._closing = True
        if not self._busy and not self._queue:
            self._wake()
            if self.transport is not None and not self._lost:
                self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.abort()


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}


def _version(text: str) -> tuple[int, int]:
    known = _VERSIONS.get(text)
    if known is not None:
        return known
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (1, 1)


class HTTPServer:
    """The protocol factory for ``loop.create_server`` plus the set of live connections."""

    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop, fast: FastPath | None = None) -> None:
        self.handler = handler
        self.fast = fast
        self.loop = loop
        self.connections: set[ClientConnection] = set()
        self._all_gone: asyncio.Event | None = None

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def shutdown(self, timeout: float) -> None:
        """Let requests in flight finish within ``timeout``, then cut what is left."""
        self._all_gone = asyncio.Event()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            try:
                await asyncio.wait_for(self._all_gone.wait(), timeout)
            except TimeoutError:
                pass
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
