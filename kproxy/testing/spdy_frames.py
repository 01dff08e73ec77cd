"""SPDY/3.1 framing: the frames of kubectl's legacy streaming transport, as bytes and back.

kubectl (client-go's ``httpstream/spdy`` over ``moby/spdystream``) upgrades ``exec``,
``attach`` and ``portforward`` requests with ``Upgrade: SPDY/3.1`` and then multiplexes
streams on the connection. This module is the codec only: :class:`FrameDecoder` takes
the bytes that arrive and gives frames (raising :class:`SpdyError` on broken framing),
:class:`FrameEncoder` takes frames and gives the bytes to send. Streams, PINGs and
GOAWAY are handled by ``spdy_session`` on top.

Implemented (SPDY draft 3 as spdystream speaks it, version 3 frames):

* control frames SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and
  WINDOW_UPDATE, and DATA frames, with the FIN flag;
* header blocks: 32-bit pair count, 32-bit length-prefixed lowercase names and values,
  several values joined by NUL; compressed with one zlib context per direction, primed
  with the SPDY/3 dictionary and sync-flushed after every block.

Not implemented: CREDENTIAL frames (dropped, as every unknown control frame is).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "CANCEL",
    "INTERNAL_ERROR",
    "INVALID_STREAM",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "SPDY3_DICTIONARY",
    "STREAM_IN_USE",
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
    "SynReply",
    "SynStream",
    "WindowUpdate",
    "decode_header_block",
    "encode_header_block",
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
