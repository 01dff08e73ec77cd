"""SPDY/3.1 sessions: the server half of the streams kubectl opens, whatever carries them.

kubectl (client-go's ``httpstream/spdy`` over ``moby/spdystream``) multiplexes streams on
a connection upgraded with ``Upgrade: SPDY/3.1``; since kubectl 1.31 port-forward also
tunnels the same SPDY bytes inside WebSocket binary messages
(``SPDY/3.1+portforward.k8s.io``). A :class:`SpdySession` is transport-free: it is fed
the bytes that arrive (decoded by ``spdy_frames``), hands the bytes to send to an async
``send`` callback, so one implementation serves both, and gives out each stream the
client opens as a :class:`SpdyStream` to read, write, half-close or reset.

* PINGs from the client are answered at once (kubectl pings every 5 or 10 s and gives up
  on a silent peer);
* streams exist only as the client opens them (odd ids), which is all kubectl needs from
  a server; a GOAWAY from the client lets the open ones finish.

Not implemented: flow control (spdystream ignores windows too), server-initiated streams
and push, priorities.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from kproxy.testing.spdy_frames import (
    CANCEL,
    INVALID_STREAM,
    PROTOCOL_ERROR,
    STREAM_IN_USE,
    Data,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAway,
    Headers,
    HeadersFrame,
    Ping,
    RstStream,
    SpdyError,
    SynReply,
    SynStream,
)

__all__ = ["SpdySession", "SpdyStream"]

_SEND_HIGH_WATER = 1 << 20
_DATA_CHUNK = 32 * 1024  # what spdystream writes at most per DATA frame from io.Copy


class SpdyStream:
    """One client-initiated stream: read what the client sends, write back, half-close."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Headers, fin: bool) -> None:
        self._session = session
        self.id = stream_id
        self.headers = headers
        self._inbox: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self.remote_closed = fin  # the client sent FIN (or RST): nothing more to read
        self.local_closed = False  # we sent FIN (or RST): nothing more to write
        self.was_reset = False
        self.replied = False

    def header(self, name: str) -> str:
        return self.headers.get(name)

    async def reply(self, headers: Headers | None = None) -> None:
        """SYN_REPLY: spdystream's CreateStream waits for it before the stream is usable."""
        if not self.replied:
            self.replied = True
            await self._session.send_frame(SynReply(self.id, headers or Headers()))

    async def read(self) -> bytes:
        """The next bytes the client sent on this stream; ``b""`` once it closed or reset it."""
        while not self._inbox:
            if self.remote_closed:
                return b""
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._inbox.popleft()

    async def read_all(self, limit: int) -> bytes:
        out = bytearray()
        while chunk := await self.read():
            out += chunk
            if len(out) > limit:
                raise ValueError(f"more than {limit} bytes on stream {self.id}")
        return bytes(out)

    async def write(self, data: bytes, fin: bool = False) -> None:
        if self.local_closed or self._session.closed:
            return
        view = memoryview(data)
        while len(view) > _DATA_CHUNK:
            await self._session.send_frame(Data(self.id, bytes(view[:_DATA_CHUNK])))
            view = view[_DATA_CHUNK:]
        if fin:
            self.local_closed = True
        if view or fin:
            await self._session.send_frame(Data(self.id, bytes(view), fin))

    async def close(self) -> None:
        """Half-close: an empty DATA frame with FIN, as spdystream's ``Stream.Close``."""
        if not self.local_closed:
            await self.write(b"", fin=True)

    def release(self) -> None:
        """Forget the stream: later frames for it are dropped."""
        self._session.forget(self.id)

    async def reset(self, status: int = CANCEL) -> None:
        if not (self.local_closed and self.remote_closed):
            self.local_closed = True
            self._remote_end(reset=True)
            await self._session.send_frame(RstStream(self.id, status))
        self._session.forget(self.id)

    # -- called by the session --

    def _received(self, data: bytes, fin: bool) -> None:
        if data and not self.remote_closed:
            self._inbox.append(data)
        if fin:
            self.remote_closed = True
        self._wakeup.set()

    def _remote_end(self, reset: bool) -> None:
        self.remote_closed = True
        if reset:
            self.was_reset = True
            self.local_closed = True
        self._wakeup.set()


class SpdySession:
    """The server side of one SPDY connection, whatever carries its bytes.

    ``send`` writes bytes to the client and waits while its buffer is full; a single
    writer task calls it, in the order frames were encoded (the header compression
    context depends on that order). Feed received bytes to :meth:`feed` and the end of
    the connection to :meth:`feed_eof`; new streams come out of :meth:`accept`.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = send
        self._decoder = FrameDecoder()
        self._encoder = FrameEncoder()
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._outbox: deque[bytes] = deque()
        self._queued = 0
        self._out_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._idle = asyncio.Event()  # nothing queued and nothing being sent
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._last_stream_id = 0
        self.closed = False  # the connection ended (EOF, GOAWAY handled, error or close())
        self.ended = asyncio.Event()  # set with ``closed``
        self.goaway_received = False
        self.error: str | None = None
        self.pings_answered = 0

    # -- inbound --

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            frames = self._decoder.feed(data)
        except SpdyError as exc:
            self.error = str(exc)
            self._enqueue(GoAway(self._last_stream_id, 1))
            self._end()
            return
        for frame in frames:
            self._dispatch(frame)

    def feed_eof(self) -> None:
        self._end()

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, Data):
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                if frame.stream_id > self._last_stream_id:
                    self._enqueue(RstStream(frame.stream_id, INVALID_STREAM))
                return  # late data for a stream we already dropped
            stream._received(frame.data, frame.fin)
        elif isinstance(frame, SynStream):
            sid = frame.stream_id
            if sid == 0 or sid % 2 == 0 or sid <= self._last_stream_id or self.goaway_received:
                self._enqueue(RstStream(sid, PROTOCOL_ERROR if sid % 2 == 0 else STREAM_IN_USE))
                return
            self._last_stream_id = sid
            stream = SpdyStream(self, sid, frame.headers, frame.fin)
            self._streams[sid] = stream
            self._incoming.put_nowait(stream)
        elif isinstance(frame, RstStream):
            stream = self._streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._remote_end(reset=True)
        elif isinstance(frame, Ping):
            if frame.ping_id % 2 == 1:  # the client's: echo it back (ours would be even)
                self.pings_answered += 1
                self._enqueue(frame)
        elif isinstance(frame, GoAway):
            # No new streams; the ones open may finish (draft 3 §2.6.6).
            self.goaway_received = True
            self._incoming.put_nowait(None)
        elif isinstance(frame, HeadersFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None and frame.fin:
                stream._received(b"", True)
        # SETTINGS, WINDOW_UPDATE and SYN_REPLY (we open no streams) need nothing.

    def _end(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended.set()
        for stream in self._streams.values():
            stream._remote_end(reset=False)
            stream.local_closed = True
        self._incoming.put_nowait(None)
        self._out_ready.set()
        self._drained.set()
        self._idle.set()

    async def accept(self) -> SpdyStream | None:
        """The next stream the client opened; None once no more can come."""
        if self.closed or self.goaway_received:
            if self._incoming.empty():
                return None
        stream = await self._incoming.get()
        if stream is None:
            self._incoming.put_nowait(None)  # stay None for every later caller
        return stream

    def forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # -- outbound --

    async def send_frame(self, frame: Frame) -> None:
        """Queue ``frame`` and wait while too much is queued (backpressure)."""
        if self.closed:
            return
        self._enqueue(frame)
        if self._queued > _SEND_HIGH_WATER:
            self._drained.clear()
            await self._drained.wait()

    def _enqueue(self, frame: Frame) -> None:
        data = self._encoder.encode(frame)
        self._outbox.append(data)
        self._queued += len(data)
        self._out_ready.set()
        self._idle.clear()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        while True:
            while not self._outbox:
                self._idle.set()
                if self.closed:
                    return
                self._out_ready.clear()
                await self._out_ready.wait()
            data = b"".join(self._outbox)
            self._outbox.clear()
            self._queued = 0
            self._drained.set()
            try:
                await self._send(data)
            except (ConnectionError, RuntimeError) as exc:  # aiohttp: "Cannot write to closing transport"
                self.error = self.error or f"write failed: {exc}"
                self._outbox.clear()
                self._end()
                return

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far went to ``send`` (or the session ended)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            pass

    async def aclose(self, goaway: bool = False) -> None:
        """Stop the writer (after sending a GOAWAY when asked) and mark the session ended."""
        if goaway and not self.closed:
            self._enqueue(GoAway(self._last_stream_id, 0))
            await self.flush()
        self._end()
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
