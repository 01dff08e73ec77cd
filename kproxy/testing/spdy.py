"""SPDY/3.1 framing and sessions, the server half of kubectl's legacy streaming transport.

kubectl (client-go's ``httpstream/spdy`` over ``moby/spdystream``) upgrades ``exec``,
``attach`` and ``portforward`` requests with ``Upgrade: SPDY/3.1`` and then multiplexes
streams on the connection; since kubectl 1.31 port-forward also tunnels the same SPDY
bytes inside WebSocket binary messages (``SPDY/3.1+portforward.k8s.io``). This module is
transport-free: a :class:`SpdySession` is fed the bytes that arrive and hands the bytes to
send to an async ``send`` callback, so one implementation serves both.

Implemented (SPDY draft 3 as spdystream speaks it, version 3 frames):

* control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and
  WINDOW_UPDATE, and DATA frames, with the FIN flag;
* header blocks: 32-bit pair count, 32-bit length-prefixed lowercase names and values,
  several values joined by NUL; compressed with one zlib context per direction, primed
  with the SPDY/3 dictionary and sync-flushed after every block;
* PINGs from the client answered at once (kubectl pings every 5 or 10 s and gives up on
  a silent peer); streams only as the client opens them (odd ids), which is all kubectl
  needs from a server.

Not implemented: flow control (spdystream ignores windows too), server-initiated streams
and push, CREDENTIAL frames, priorities.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "SPDY3_DICTIONARY",
    "Data",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "GoAway",
    "Headers",
    "HeadersFrame",
    "Ping",
    "RstStream",
    "Settings",
    "SpdyError",
    "SpdySession",
    "SpdyStream",
    "SynReply",
    "SynStream",
    "WindowUpdate",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

TYPE_SYN_STREAM = 1
TYPE_SYN_REPLY = 2
TYPE_RST_STREAM = 3
TYPE_SETTINGS = 4
TYPE_PING = 6
TYPE_GOAWAY = 7
TYPE_HEADERS = 8
TYPE_WINDOW_UPDATE = 9

# RST_STREAM status codes (draft 3 §2.6.3).
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6
STREAM_IN_USE = 8

MAX_FRAME_LENGTH = (1 << 24) - 1
_MAX_HEADER_BLOCK = 1 << 20  # decompressed; kubectl's blocks are a few dozen bytes

# The SPDY/3 header compression dictionary (draft 3 §2.6.10.1), byte for byte: 65
# length-prefixed (32-bit big-endian) header names and values, then a run of status
# codes, reason phrases, dates and media types with no separators. The dictionary's
# Adler-32 goes on the wire (zlib's DICTID), so a single wrong byte breaks every header
# block in both directions.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
SPDY3_DICTIONARY = b"".join(
    struct.pack(">I", len(word)) + word.encode("ascii") for word in _DICTIONARY_WORDS
) + _DICTIONARY_TAIL.encode("ascii")


class SpdyError(Exception):
    """The peer broke the framing: the session cannot go on."""


class Headers:
    """A SPDY header block: lowercase names, each with one or more values, in order."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: list[tuple[str, str]] = [(name.lower(), value) for name, value in pairs]

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self._items:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._items if key == name]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=Headers)
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=Headers)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=Headers)
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes = b""
    fin: bool = False


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data


# -- codec ------------------------------------------------------------------------------


class FrameDecoder:
    """Bytes in, frames out. Keeps the inbound zlib context across header blocks."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=SPDY3_DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        """Every frame completed by ``data``; raises :class:`SpdyError` on bad framing."""
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        while len(buffer) - offset >= 8:
            first, flags_length = struct.unpack_from(">II", buffer, offset)
            length = flags_length & 0xFFFFFF
            if len(buffer) - offset - 8 < length:
                break
            flags = flags_length >> 24
            payload = bytes(buffer[offset + 8 : offset + 8 + length])
            offset += 8 + length
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frame = self._control(first & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
        del buffer[:offset]
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == TYPE_SYN_STREAM:
                stream_id, associated, priority = struct.unpack_from(">IIB", payload)
                return SynStream(
                    stream_id & 0x7FFFFFFF,
                    self._headers(payload[10:]),
                    associated & 0x7FFFFFFF,
                    priority >> 5,
                    fin,
                    bool(flags & FLAG_UNIDIRECTIONAL),
                )
            if kind == TYPE_SYN_REPLY:
                (stream_id,) = struct.unpack_from(">I", payload)
                return SynReply(stream_id & 0x7FFFFFFF, self._headers(payload[4:]), fin)
            if kind == TYPE_HEADERS:
                (stream_id,) = struct.unpack_from(">I", payload)
                return HeadersFrame(stream_id & 0x7FFFFFFF, self._headers(payload[4:]), fin)
            if kind == TYPE_RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == TYPE_SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                entries = []
                for i in range(count):
                    flag_id, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                    entries.append((flag_id >> 24, flag_id & 0xFFFFFF, value))
                return Settings(tuple(entries), bool(flags & 0x01))
            if kind == TYPE_PING:
                (ping_id,) = struct.unpack_from(">I", payload)
                return Ping(ping_id)
            if kind == TYPE_GOAWAY:
                last_good, status = (
                    struct.unpack_from(">II", payload)
                    if len(payload) >= 8
                    else (struct.unpack_from(">I", payload)[0], 0)
                )
                return GoAway(last_good & 0x7FFFFFFF, status)
            if kind == TYPE_WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyError(f"truncated control frame of type {kind}") from exc
        return None  # unknown control frames are ignored (draft 3 §2.2.1)

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block, _MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"header block does not decompress: {exc}") from exc
        if self._inflate.unconsumed_tail:
            raise SpdyError("header block too large")
        return decode_header_block(raw)


def decode_header_block(raw: bytes) -> Headers:
    """An uncompressed SPDY/3 name/value block."""
    try:
        (count,) = struct.unpack_from(">I", raw)
        offset = 4
        items: list[tuple[str, str]] = []
        for _ in range(count):
            (name_length,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4 : offset + 4 + name_length]
            offset += 4 + name_length
            (value_length,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4 : offset + 4 + value_length]
            offset += 4 + value_length
            if len(name) != name_length or len(value) != value_length:
                raise SpdyError("truncated header block")
            for part in value.split(b"\x00"):
                items.append((name.decode("latin-1"), part.decode("latin-1")))
    except struct.error as exc:
        raise SpdyError("truncated header block") from exc
    return Headers(items)


def encode_header_block(headers: Headers) -> bytes:
    grouped: dict[str, list[str]] = {}
    for name, value in headers.items():
        grouped.setdefault(name, []).append(value)
    parts = [struct.pack(">I", len(grouped))]
    for name, values in grouped.items():
        encoded_name = name.encode("latin-1")
        encoded_value = "\x00".join(values).encode("latin-1")
        parts += (struct.pack(">I", len(encoded_name)), encoded_name)
        parts += (struct.pack(">I", len(encoded_value)), encoded_value)
    return b"".join(parts)


class FrameEncoder:
    """Frames in, bytes out. Keeps the outbound zlib context across header blocks, so
    frames must be sent in the order they were encoded."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(
            zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY
        )

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError("DATA frame too long")
            flags = FLAG_FIN if frame.fin else 0
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, flags << 24 | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            body = struct.pack(">IIBB", frame.stream_id, frame.associated_id, (frame.priority & 7) << 5, 0)
            return self._control(TYPE_SYN_STREAM, flags, body + self._compress(frame.headers))
        if isinstance(frame, SynReply):
            body = struct.pack(">I", frame.stream_id) + self._compress(frame.headers)
            return self._control(TYPE_SYN_REPLY, FLAG_FIN if frame.fin else 0, body)
        if isinstance(frame, HeadersFrame):
            body = struct.pack(">I", frame.stream_id) + self._compress(frame.headers)
            return self._control(TYPE_HEADERS, FLAG_FIN if frame.fin else 0, body)
        if isinstance(frame, RstStream):
            return self._control(TYPE_RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", flags << 24 | setting, value) for flags, setting, value in frame.entries
            )
            return self._control(TYPE_SETTINGS, 0x01 if frame.clear else 0, body)
        if isinstance(frame, Ping):
            return self._control(TYPE_PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(TYPE_GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            return self._control(TYPE_WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")

    def _compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(body)) + body


# -- sessions ---------------------------------------------------------------------------

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
