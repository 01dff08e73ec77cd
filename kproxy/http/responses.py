"""Answers and their framing: what handlers return and the bytes that go on the wire.

Handlers return a :class:`Response` (status, headers and the whole body, sent in one
write), a :class:`StreamResponse` (a head, then chunks as they come) or :class:`Sent`
(the handler wrote its answer through the connection itself, as the relay does).
Framing — ``Content-Length``, chunked coding, ``Connection`` — is the connection's
business: handlers' own framing headers are dropped here.
"""

from __future__ import annotations

import http
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kproxy.http.messages import Request

__all__ = [
    "TEXT_PLAIN",
    "Answer",
    "Response",
    "Sent",
    "StreamResponse",
    "header_bytes",
    "http_date",
    "http_error",
    "status_line",
]

TEXT_PLAIN = "text/plain; charset=utf-8"
# Statuses that never carry a body (RFC 9110 §15.3.5, §15.4.5); 1xx neither.
NO_BODY_STATUS = frozenset({204, 304})

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d status code %d\r\n" % (status, status)  # Go's text for unknown codes
    return line


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """RFC 9110 §5.6.7 IMF-fixdate (Go's ``http.TimeFormat``), independent of the locale
    (and of email.utils, which costs start-up time)."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class Clock:
    """The ``Date`` header line, formatted once a second."""

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


HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]] | None


def header_bytes(headers: HeadersLike) -> tuple[bytes, int | None, bool]:
    """(header lines without framing, the Content-Length if given, whether Date was given)."""
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

    def __init__(self, status: int = 200, *, body: bytes | None = None, headers: HeadersLike = None) -> None:
        self.status = status
        self.headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        self.body = body or b""
        self.close = False

    def force_close(self) -> None:
        self.close = True

    def send(self, request: Request) -> None:
        lines, length, has_date = header_bytes(self.headers)
        request.protocol.send_complete(
            request, self.status, lines, self.body, length=length, has_date=has_date, close=self.close
        )


def http_error(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    """Go's ``http.Error``: the text and a newline, as plain text not to be sniffed."""
    return Response(
        status,
        body=f"{text}\n".encode(),
        headers={"Content-Type": TEXT_PLAIN, "X-Content-Type-Options": "nosniff", **(headers or {})},
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
            lines, length, has_date = header_bytes(self.headers)
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
    """An answer the handler wrote itself through the connection (the relay's way):
    its status, how many body bytes it wrote, and whether it had to cut the answer short
    (its source failed midway: the client sees a truncated answer)."""

    __slots__ = ("cut", "sent", "status")
    prepared = True

    def __init__(self, status: int, sent: int = 0, cut: bool = False) -> None:
        self.status = status
        self.sent = sent
        self.cut = cut


Answer = Response | StreamResponse | Sent
