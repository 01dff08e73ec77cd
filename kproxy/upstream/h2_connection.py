"""One HTTP/2 connection to the API server and its streams: the I/O around the h2 adapter.

In: a connected transport (the dialer's, ALPN ``h2``), request fields for new streams
(requests without a body: watches and followed logs), and what the relay consumes of
each answer. Out: :class:`H2Stream` objects that answer like an HTTP/1.1 upstream
connection does for the relay (``response_head``, ``complete``, ``take_buffered_body``,
``read_body``), and a connection that says whether it can take another stream.

Go's HTTP/2 client as client-go sets it up is the model (``docs/upstream-connections.md`` §2):

* at most the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` streams (100 until it says;
  the lane waits for the server's first ``SETTINGS`` anyway, which follow the handshake);
* data is acknowledged (window space handed back) only as the relay takes it, i.e. as
  the client reads: a slow client stalls its own stream when its 4 MiB window is full,
  never the others (the connection's window is 1 GiB);
* ``PING`` after :data:`READ_IDLE` without a frame, and the connection closed when no
  answer comes within :data:`PING_TIMEOUT` (client-go's ``ReadIdleTimeout`` 30 s and
  ``PingTimeout`` 15 s); an idle connection closes after :data:`IDLE_TIMEOUT`;
* on ``GOAWAY`` no new streams; streams above its last-stream-id were not processed and
  are refused (the lane sends them again elsewhere), the rest may finish;
* ``RST_STREAM`` (``CANCEL``) when the relay lets go of a stream before its end — the
  client went away.

A protocol error costs the streams of this connection only: each fails with an
:class:`~kproxy.errors.UpstreamError` (a ``502``, or a cut answer once its head is out).
A stream's stored error is raised as a copy (:func:`kproxy.errors.fresh`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import cast

from kproxy.errors import UpstreamError, fresh
from kproxy.policy.h2_fields import response_head
from kproxy.upstream.connection import ResponseHead
from kproxy.upstream.h2_adapter import ASSUMED_MAX_STREAMS, REFUSED_STREAM, H2Adapter, H2ProtocolError, error_name
from kproxy.waiters import wake

__all__ = ["IDLE_TIMEOUT", "PING_TIMEOUT", "READ_IDLE", "H2Connection", "H2Stream", "StreamRefused"]

READ_IDLE = 30.0  # client-go: ReadIdleTimeout
PING_TIMEOUT = 15.0  # client-go: PingTimeout
IDLE_TIMEOUT = 90.0  # Go's http.Transport IdleConnTimeout

Fields = list[tuple[bytes, bytes]]


class StreamRefused(UpstreamError):
    """The server did not process the stream (``REFUSED_STREAM``, or above a ``GOAWAY``'s
    last-stream-id): it is safe to send it again on another connection."""


class H2Stream:
    """One request's answer on an HTTP/2 connection."""

    __slots__ = ("_body", "_conn", "_flow", "_head_waiter", "_waiter", "complete", "error", "head", "stream_id")

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.head: ResponseHead | None = None
        self.complete = False
        self.error: Exception | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._flow = 0  # flow-controlled bytes received and not yet handed back
        self._head_waiter: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def response_head(self) -> ResponseHead:
        while self.head is None:
            if self.error is not None:
                raise fresh(self.error)
            self._head_waiter = self._conn.loop.create_future()
            await self._head_waiter
        return self.head

    def take_buffered_body(self) -> bytes:
        body = self._body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        flow, self._flow = self._flow, 0
        self._conn.acknowledge(self.stream_id, flow)
        return data

    async def read_body(self, limit: int = 0) -> bytes:
        """The next body bytes; ``b""`` at the end. Taking them hands their window back.
        (``limit`` is the HTTP/1.1 connection's; a stream's own window, acknowledged only
        as the relay takes data, already bounds what waits here.)"""
        while not self._body:
            if self.complete:
                return b""
            if self.error is not None:
                raise fresh(self.error)
            self._waiter = self._conn.loop.create_future()
            await self._waiter
        return self.take_buffered_body()

    def close(self) -> None:
        """The relay is done with the stream: cancelled upstream if it has not ended."""
        self._conn.forget(self, cancel=not self.complete and self.error is None)

    # -- from the connection ------------------------------------------------------------

    def _headed(self, head: ResponseHead) -> None:
        self.head = head
        wake(self._head_waiter)

    def _data(self, data: bytes, flow: int) -> None:
        self._body.append(data)
        self._flow += flow
        wake(self._waiter)

    def _ended(self) -> None:
        self.complete = True
        wake(self._head_waiter)
        wake(self._waiter)

    def _failed(self, error: Exception) -> None:
        if self.complete:
            return
        self.error = error
        wake(self._head_waiter)
        wake(self._waiter)


class H2Connection(asyncio.Protocol):
    """An HTTP/2 client connection (the asyncio protocol its transport drives)."""

    def __init__(self, on_change: Callable[[H2Connection], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.max_streams = ASSUMED_MAX_STREAMS
        self.going_away = False
        self.closed = False
        self.generation = 0  # of the client certificate it was made with (TLSSource)
        self.negotiated: str | None = None  # the ALPN protocol; anything but "h2": unusable
        self._adapter = H2Adapter(self)
        self._on_change = on_change  # told when capacity may have grown or the connection ended
        self._last_frame = time.monotonic()
        self._idle_since = self._last_frame
        self._pinged = False
        self._timer: asyncio.TimerHandle | None = None
        self._settled: asyncio.Future[None] = self.loop.create_future()

    @property
    def available(self) -> int:
        """How many more streams it takes now."""
        if self.going_away or self.closed:
            return 0
        return max(0, self.max_streams - len(self.streams))

    def open(self, fields: Fields) -> H2Stream:
        """A new stream for a request without a body; raises UpstreamError when full or closed."""
        if not self.available:
            raise StreamRefused("the HTTP/2 connection to the API server takes no more streams")
        stream_id = self._adapter.open_stream(fields)
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        self._flush()
        return stream

    def acknowledge(self, stream_id: int, flow: int) -> None:
        if flow and not self.closed:
            self._adapter.acknowledge(stream_id, flow)
            self._flush()

    def forget(self, stream: H2Stream, *, cancel: bool) -> None:
        if self.streams.pop(stream.stream_id, None) is None:
            return
        if not self.closed:
            if cancel:
                self._adapter.reset(stream.stream_id)
            # What the relay never took still counts against the connection's window.
            self._adapter.acknowledge(stream.stream_id, stream._flow)
            stream._flow = 0
            self._flush()
        if not self.streams:
            self._idle_since = time.monotonic()
            if self.going_away:
                self.close()
        self._changed()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._adapter.go_away()
            self._flush()
            self.transport.close()
        self._lost(UpstreamError("the HTTP/2 connection to the API server was closed"))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._lost(UpstreamError("the HTTP/2 connection to the API server was closed"))

    # -- asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        obj = transport.get_extra_info("ssl_object")
        self.negotiated = obj.selected_alpn_protocol() if obj is not None else None
        if self.negotiated != "h2":
            # The server chose HTTP/1.1: not a word of HTTP/2 goes out (the lane closes it).
            self.closed = True
            return
        self._adapter.initiate()
        self._flush()
        self._timer = self.loop.call_later(READ_IDLE, self._check)

    def data_received(self, data: bytes) -> None:
        self._last_frame = time.monotonic()
        try:
            self._adapter.feed(data)
        except H2ProtocolError as exc:
            self._lost(exc)
            if self.transport is not None:
                self.transport.abort()
            return
        self._flush()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(UpstreamError("the API server closed the HTTP/2 connection"))

    def pause_writing(self) -> None:
        pass  # only small frames go out: heads, window updates, resets, pings

    def resume_writing(self) -> None:
        pass

    # -- the adapter's sink -------------------------------------------------------------

    def on_head(self, stream_id: int, fields: Fields) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        try:
            status, raw = response_head(fields)
        except UpstreamError as exc:
            stream._failed(exc)
            self._adapter.reset(stream_id)
            return
        stream._headed(ResponseHead(status, raw, True))

    def on_data(self, stream_id: int, data: bytes, flow: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            self._adapter.acknowledge(stream_id, flow)  # a stream we let go: give the window back
            return
        stream._data(data, flow)

    def on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream._ended()

    def on_reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if code == REFUSED_STREAM and stream.head is None:
            stream._failed(StreamRefused("the API server refused the HTTP/2 stream (REFUSED_STREAM)"))
        else:
            stream._failed(UpstreamError(f"the API server reset the HTTP/2 stream ({error_name(code)})"))

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        self.going_away = True
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last_stream_id:
                stream._failed(StreamRefused(f"the API server is going away (GOAWAY {error_name(code)})"))
        if not self.streams:
            self.close()
        self._changed()

    def on_settings(self, max_streams: int | None) -> None:
        if max_streams is not None:
            self.max_streams = max_streams
        wake(self._settled)
        self._changed()

    async def settled(self) -> None:
        """The server's first SETTINGS are in (they follow the handshake at once): its
        stream limit is known before streams are opened."""
        if self._settled.done() or self.closed:
            return
        await self._settled

    def on_ping_ack(self) -> None:
        self._pinged = False

    # -- internals ----------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._adapter.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def _check(self) -> None:
        """Health and idleness, every :data:`READ_IDLE` at most (Go's ``healthCheck``)."""
        self._timer = None
        if self.closed:
            return
        now = time.monotonic()
        if self._pinged:  # the ping went out PING_TIMEOUT ago, and no frame came since
            if now - self._last_frame >= PING_TIMEOUT:
                self._lost(UpstreamError(f"the API server did not answer a PING within {PING_TIMEOUT:g}s"))
                if self.transport is not None:
                    self.transport.abort()
                return
            self._pinged = False
        if not self.streams and now - self._idle_since >= IDLE_TIMEOUT:
            self.close()
            return
        wait = READ_IDLE - (now - self._last_frame)
        if wait <= 0:
            self._pinged = True
            self._adapter.ping()
            self._flush()
            wait = PING_TIMEOUT
        self._timer = self.loop.call_later(wait, self._check)

    def _lost(self, error: Exception) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in self.streams.values():
            stream._failed(error)
        wake(self._settled)
        self._changed()
