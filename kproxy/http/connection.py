"""One client connection: parse requests, run them one at a time, write the answers.

In: bytes from the client, parsed by httptools (llhttp, the parser Node.js uses).
Out: :class:`~kproxy.http.messages.Request` objects handed to the handler one at a time
(pipelined requests wait in order), answers written with the framing HTTP/1.1 needs
(:mod:`kproxy.http.framing`), keep-alive, ``Expect``, upgrades, a graceful drain.

The connection's life is an explicit :class:`Phase`::

    ACTIVE ──(llhttp sees an upgrade)──> UPGRADED ──┐
      │  └──(unparseable input)──> REJECTED ────────┤
      └─────────────(last answer written)───────────┴──> LINGERING ──> CLOSED

and, across ACTIVE, whether a request is being answered (``busy``) and whether a
graceful stop asked for the connection to end after it (``draining``). Two ways to
answer a request: the connection's task awaits the handler; or the *fast path* — a
plain callable the server was given — takes a complete request synchronously and
answers it from callbacks, handing back with :meth:`fast_done` or, when it cannot
finish, :meth:`fast_fallback` (the task then continues the exchange).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

from kproxy.http.deadlines import Deadlines
from kproxy.http.flow import ReadGate, WriteFlow
from kproxy.http.framing import LAST_CHUNK, Framing, chunk, complete_answer, stream_head
from kproxy.http.messages import Attachment, BrokenBody, RawSink, Request, Resume
from kproxy.http.parsing import RequestReader
from kproxy.http.responses import TEXT_PLAIN, Clock, Response, StreamResponse
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.waiters import wake

if TYPE_CHECKING:
    from kproxy.http.server import HTTPServer

__all__ = ["ClientConnection", "FastPath", "Phase"]

_MAX_PIPELINED = 16
_HALF_PIPELINED = _MAX_PIPELINED // 2
_LINGER = 0.5  # s; Go's rstAvoidanceDelay
_CLOCK = Clock()


class Phase(enum.Enum):
    ACTIVE = "active"  # reading and answering requests
    UPGRADED = "upgraded"  # the parser is off: bytes belong to the upgraded protocol
    REJECTED = "rejected"  # unparseable input: answered after what came before, then closed
    LINGERING = "lingering"  # our FIN is out; the client's bytes are read and dropped
    CLOSED = "closed"  # the transport is gone


# The phases as plain globals: an enum member's attribute lookup costs more than a
# global's on every callback of the hot path.
ACTIVE, UPGRADED, REJECTED, LINGERING, CLOSED = Phase


@dataclass(frozen=True, slots=True)
class _Resumed:
    """A request the fast path handed back, with what is left of its exchange."""

    request: Request
    resume: Resume | None


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Input that could not be parsed: answered in turn, then the connection ends."""

    status: int
    detail: str


Queued = Request | _Resumed | _Refusal
FastPath = Callable[[Request], bool]


class ClientConnection(asyncio.Protocol):
    """One client connection (see the module docstring for its phases)."""

    def __init__(self, server: HTTPServer) -> None:
        self._server = server
        self._loop = server.loop
        self._fast = server.fast
        self.transport: asyncio.Transport | None = None
        self.peer: object = None
        self.attachment: Attachment | None = None
        self.reading = ReadGate()
        self._writing = WriteFlow()
        self.phase = ACTIVE
        self.busy = False  # a request is being answered (by the task or the fast path)
        self.draining = False  # a graceful stop: end after the request in flight
        self._reader = RequestReader(self)
        self._queue: collections.deque[Queued] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        # The answer being written.
        self._started = False  # its head is out
        self._keep = True  # the connection may carry another request after it
        self._framing = Framing(chunked=False, head_only=False, keep=True)
        # After an upgrade: where the client's bytes go, or wait until a sink is given.
        self._sink: RawSink | None = None
        self._pending: list[bytes] = []
        self._pending_eof = False
        # The read-header and idle deadlines (kproxy.http.deadlines), when either is set.
        self._deadlines: Deadlines | None = None
        if server.deadline_period:
            self._deadlines = Deadlines(self, self._loop, server.read_header_timeout, server.idle_timeout)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task serving the connection's requests one by one."""
        return self._task

    # -- asyncio protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.reading.attach(self.transport)
        self.peer = transport.get_extra_info("peername")
        self._server.connections.add(self)
        admit = self._server.admit
        if admit is not None:
            refusal = admit(self.peer)
            if refusal is not None:
                # Refused at the door: answered before a byte is read, and whatever the
                # client sends is dropped unread while our FIN goes out (_end_gently).
                self.transport.write(refusal)
                self._end_gently()
                return
        self._task = self._loop.create_task(self._serve())
        if self._deadlines is not None:
            self._deadlines.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self._no_deadlines()
        self.reading.detach()
        self._server.forget(self)
        attachment, self.attachment = self.attachment, None
        if attachment is not None:
            attachment.client_gone()  # a client that leaves releases its upstream at once
        self._reader.cut()
        # Let go of the parser (its callbacks hold this protocol), so that refcounting
        # frees the connection now rather than the cycle collector later: under churn
        # that "later" was a straight line of RSS.
        self._reader.close()
        for item in self._queue:
            if isinstance(item, Request):
                item.cut()
        if self._sink is not None:
            self._sink.feed_eof()
        else:
            self._pending_eof = True
        self._writing.lost()
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase is not ACTIVE:
            if phase is UPGRADED:
                if self._sink is not None:
                    self._sink.feed_data(data)
                else:  # the handler has not taken the stream yet
                    self._pending.append(data)
            return  # REJECTED: reading is paused; LINGERING: dropped
        self._reader.feed(data)
        if self._queue and not self.busy:
            self._dispatch()

    def eof_received(self) -> bool | None:
        phase = self.phase
        if phase is LINGERING:
            return None  # the client has closed too: done
        if phase is UPGRADED:
            if self._sink is not None:
                self._sink.feed_eof()
            else:
                self._pending_eof = True
            return True  # the upgraded stream may still be answered
        if phase is REJECTED:
            return True  # keep our side open for the error answer
        self._reader.cut()
        return None

    def pause_writing(self) -> None:
        self._writing.pause()

    def resume_writing(self) -> None:
        self._writing.resume()

    # -- what the reader finds (kproxy.http.parsing.Listener) --------------------------

    def request(self, request: Request) -> None:
        self._queue.append(request)
        if len(self._queue) > _MAX_PIPELINED:
            self.reading.pause_for(self._queue)

    def upgraded(self, tail: bytes) -> None:
        self.phase = UPGRADED
        self._no_deadlines()
        if tail:
            self._pending.append(tail)

    def refuse(self, status: int, detail: str) -> None:
        # What cannot be parsed is answered after what came before, then the connection ends.
        self.phase = REJECTED
        self._no_deadlines()
        self._queue.append(_Refusal(status, detail))
        if self.transport is not None:
            self.transport.pause_reading()

    # -- deadlines (kproxy.http.deadlines.Watched) --------------------------------------

    def awaited(self) -> tuple[bool, object] | None:
        if self.phase is not ACTIVE or self.busy or self._queue:
            return None
        reader = self._reader
        if reader.parsing is not None:
            return None  # a body is arriving: a request in progress
        if not self._started:
            return (True, None)  # the first request's head, from the connection's start
        return (reader.head_open, reader.marker)

    def deadline_passed(self, head: bool) -> None:
        if head and self._reader.head_open:
            self.refuse(408, "")  # part of a head came: say why it ends (Go just closes)
        else:
            self.draining = True  # nothing came: close, as Go does, without an answer
        self._wake()

    def _no_deadlines(self) -> None:
        if self._deadlines is not None:
            self._deadlines.stop()
            self._deadlines = None

    # -- serving ------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        wake(waiter)

    def _begin(self, request: Request) -> None:
        self.busy = True
        self._keep = request.keep_alive and not request.upgraded
        self._started = False

    def _dispatch(self) -> None:
        """Start the next request: by the fast path when it takes it, else on the task."""
        if self.busy or not self._queue or self.phase is CLOSED:
            return
        item = self._queue[0]
        fast = self._fast
        if fast is not None and type(item) is Request and item.complete and not item.upgraded and not self.draining:
            self._queue.popleft()
            self.busy = True  # as _begin, inline: this runs for every fast request
            self._keep = item.keep_alive
            self._started = False
            if fast(item):
                if self.reading.paused and len(self._queue) <= _HALF_PIPELINED:
                    self.reading.resume_for(self._queue)
                return
            self.busy = False
            self._queue.appendleft(item)
        self._wake()

    def fast_done(self) -> None:
        """A fast exchange has written its whole answer."""
        self.busy = False
        if not self._keep or self.draining:
            self._wake()  # the task ends the connection (or serves what is queued first)
            return
        if self._queue:
            self._dispatch()

    def fast_fallback(self, request: Request, resume: Resume | None) -> None:
        """The fast path cannot finish ``request``: the task takes over, with ``resume``
        (what is left of the exchange) or, if None, the whole handler from the start."""
        self.busy = False
        self._queue.appendleft(_Resumed(request, resume))
        self._wake()

    async def _serve(self) -> None:
        queue = self._queue
        try:
            while self.phase is not CLOSED:
                if self._started and not self._keep and not self.busy:
                    break  # the last answer (a fast exchange's) ended the connection
                if not queue or self.busy:  # busy: a fast exchange is on its way
                    if self.draining and not self.busy:
                        break
                    self._waiter = self._loop.create_future()
                    await self._waiter
                    continue
                item = queue.popleft()
                if self.reading.paused and len(queue) <= _HALF_PIPELINED:
                    self.reading.resume_for(queue)
                if isinstance(item, _Refusal):
                    self._send_error(item.status, item.detail)
                    break
                if not await self._answer(item):
                    break
        except asyncio.CancelledError:
            pass
        finally:
            self.busy = False
            self._end_gently()

    async def _answer(self, item: Request | _Resumed) -> bool:
        """Run the handler (or what the fast path left) for one request; whether the
        connection can carry the next one."""
        if isinstance(item, _Resumed):
            request, resume = item.request, item.resume
        else:
            request, resume = item, None
        self._begin(request)
        if resume is None:
            coding = request.header(b"transfer-encoding")
            if coding is not None and coding.strip().lower() != b"chunked":
                # Go's server: a Transfer-Encoding other than exactly chunked is 501 (RFC
                # 9112 §6.1); llhttp reads "gzip, chunked" as chunked. Nothing goes on.
                self._send_error(501, f"unsupported transfer encoding {coding.decode('latin-1')[:100]!r}")
                return False
        try:
            answer = await (resume() if resume is not None else self._server.handler(request))
            if isinstance(answer, Response):
                answer.send(request)
            elif not answer.prepared:
                assert isinstance(answer, StreamResponse)
                await answer.prepare(request)
                await answer.write_eof()
        except asyncio.CancelledError:
            raise
        except BrokenBody:
            # The body broke off: the client left (nothing to answer), or sent what cannot
            # be parsed, and the refusal queued behind this request is its answer.
            return self.phase is REJECTED and not self._started
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.raw_path[:200])
            if not self._started:  # once the head is out, only cutting the connection tells
                self._send_error(500, "")
            return False
        finally:
            self.busy = False
        if not self._keep or self.phase is CLOSED or self.phase is UPGRADED:
            return False  # (REJECTED: the refusal queued after this request is answered next)
        return request.body_done  # an unread body: the next request's start is somewhere in it

    def _end_gently(self) -> None:
        """Close after what is buffered has been sent, without a reset: like Go's
        closeWriteAndWait, send our FIN, then read and drop what the client may still
        send for a moment. Closing with unread bytes would make the kernel answer them
        with a reset, and the client could lose the answer it has not read yet."""
        transport = self.transport
        if transport is None or self.phase is CLOSED:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self.phase = LINGERING
        self._no_deadlines()
        self.reading.forget_holders()
        try:
            transport.write_eof()
            transport.resume_reading()
        except (OSError, RuntimeError):
            transport.close()
            return
        self._loop.call_later(_LINGER, transport.close)

    def _send_error(self, status: int, detail: str) -> None:
        # Go's server answers what it cannot parse itself: plain text, then it closes
        # ("400 Bad Request: missing required Host header", "431 Request Header Fields
        # Too Large"); kproxy says why for 501 and 505 too.
        if status != 500:
            tally.reject("bad_request")
        text = f"{status} {HTTPStatus(status).phrase}"
        body = (f"{text}: {detail}" if detail else text).encode("utf-8", "backslashreplace")
        self._keep = False
        lines = b"Content-Type: " + TEXT_PLAIN.encode() + b"\r\n"
        self.send_complete(None, status, lines, body, length=None, has_date=False, close=True)

    # -- writing answers (kproxy.http.messages.Connection) ------------------------------

    @property
    def write_paused(self) -> bool:
        return self._writing.paused

    async def drain(self) -> None:
        await self._writing.drain()

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
        if close or self.draining:
            self._keep = False
        if request is not None and request.added_lines:
            lines += request.added_lines
        data = complete_answer(
            status,
            lines,
            body,
            length,
            b"" if has_date else _CLOCK.line(),
            self._keep,
            request.version if request is not None else (1, 1),
            request is not None and request.method == "HEAD",
        )
        self._started = True
        if self.transport is not None and self.phase is not CLOSED:
            self.transport.write(data)

    def send_head(
        self, request: Request, status: int, lines: bytes, *, length: int | None, has_date: bool, close: bool = False
    ) -> None:
        if close or self.draining:
            self._keep = False
        if request.added_lines:
            lines += request.added_lines
        head, self._framing = stream_head(
            status,
            lines,
            length=length,
            date_line=b"" if has_date else _CLOCK.line(),
            keep=self._keep,
            version=request.version,
            head_only=request.method == "HEAD",
        )
        self._keep = self._framing.keep
        self._started = True
        if self.transport is not None and self.phase is not CLOSED:
            self.transport.write(head)

    def send_body(self, data: bytes) -> None:
        framing = self._framing
        if framing.head_only or not data or self.transport is None or self.phase is CLOSED:
            return
        self.transport.write(chunk(data) if framing.chunked else data)

    def end_body(self) -> None:
        framing = self._framing
        if framing.chunked and self.transport is not None and self.phase is not CLOSED:
            framing.chunked = False
            self.transport.write(LAST_CHUNK)

    # -- upgrades -----------------------------------------------------------------------

    def take_stream(self, sink: RawSink) -> None:
        self.phase = UPGRADED
        self._no_deadlines()
        self._keep = False
        self._sink = sink
        self.reading.forget_holders()
        pending, self._pending = self._pending, []
        for data in pending:
            sink.feed_data(data)
        if self._pending_eof:
            sink.feed_eof()

    def write_raw(self, data: bytes) -> None:
        self._started = True
        if self.transport is not None and self.phase is not CLOSED:
            self.transport.write(data)

    # -- shutdown -----------------------------------------------------------------------

    def shut_down(self) -> None:
        """Finish the request in flight, if any, then close."""
        self.draining = True
        if not self.busy and not self._queue:
            self._wake()
            if self.transport is not None and self.phase is not CLOSED:
                self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and self.phase is not CLOSED:
            self.transport.abort()
