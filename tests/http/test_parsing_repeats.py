"""kproxy.http.parsing: a read that repeats the previous one gives the same request
without llhttp. The reference is a reader that never takes that way: whatever the
reads, both must see the same requests, refusals and upgrades."""

from __future__ import annotations

from typing import Any, cast

import pytest
from httptools import HttpRequestParser

from kproxy.http import Request
from kproxy.http.parsing import RequestReader
from tests.http.test_parsing import GET, POST_CHUNKED, POST_LENGTH, Recorder


class _Reference(RequestReader):
    """Parses every read with llhttp."""

    def _remember(self, data: bytes, request: Request) -> None:
        pass


def _outcome(conn: Recorder) -> list[Any]:
    def one(r: Request) -> tuple[Any, ...]:
        body = b"".join(r.content._chunks) if r._body is not None else b""
        return (r.method, r.raw_path, r.version, list(r.raw_headers), r.keep_alive, r.upgraded, r.complete, body)

    return [[one(r) for r in conn.requests], conn.refused, conn.upgrades]


class _Counted:
    """A reader's llhttp parser, counting the reads given to it (in ``conn.parsed``)."""

    def __init__(self, parser: Any, conn: _Conn) -> None:
        self._parser = parser
        self._conn = conn

    def feed_data(self, data: bytes) -> None:
        self._conn.parsed += 1
        self._parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


class _Conn(Recorder):
    parsed = 0


def _both(*reads: bytes) -> tuple[_Conn, _Conn]:
    out = []
    for kind in (RequestReader, _Reference):
        conn = _Conn()
        reader = kind(conn)  # type: ignore[arg-type]
        for data in reads:
            if conn.refused is not None or conn.upgrades:
                break  # the connection stops reading (or hands the bytes to the new protocol)
            if not isinstance(reader._parser, _Counted):  # (made again after an h2c offer, an unknown method)
                # The stand-in delegates everything else to the parser it wraps: the
                # attribute's type (httptools' parser) is the one it stands in for.
                reader._parser = cast(HttpRequestParser, _Counted(reader._parser, conn))
            reader.feed(data)
        out.append(conn)
    return out[0], out[1]


H2C = (
    b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
)
WEBSOCKET = b"GET /w HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
CLOSE = b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
HTTP10 = b"GET /ten HTTP/1.0\r\nHost: h\r\n\r\n"
HTTP10_KEEP = b"GET /ten HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"
UNKNOWN = b"post /u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
EMPTY_BODY = b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
EMPTY_CHUNKED = b"POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"

# The reads, and how many of them go to llhttp (the others are repeats).
READS = {
    "the same GET, three times": ((GET, GET, GET), 1),
    "a GET again after another": ((GET, GET.replace(b"/a", b"/b"), GET, GET), 3),
    "two requests in one read, again": ((GET + GET, GET + GET), 2),
    "a read that also starts the next request": ((GET + b"GET /n", b" HTTP/1.1\r\n\r\n", GET + b"GET /n"), 3),
    "a read that ends in a head, then that head's end again": (
        (b"GET /a HTTP/1.1\r\n", b"Host: h\r\n\r\n", b"Host: h\r\n\r\n"),
        3,
    ),
    "the end of a body, twice": ((POST_LENGTH[:-2], POST_LENGTH[-2:], POST_LENGTH[-2:]), 3),
    "a body in the read, again": ((POST_LENGTH, POST_LENGTH), 2),
    "a chunked body, again": ((POST_CHUNKED, POST_CHUNKED), 2),
    "an empty body by length, again": ((EMPTY_BODY, EMPTY_BODY), 1),
    "an empty chunked body, again": ((EMPTY_CHUNKED, EMPTY_CHUNKED), 1),
    "a leading empty line, again": ((b"\r\n" + GET, b"\r\n" + GET), 1),
    "an empty line after it, again": ((GET + b"\r\n", GET + b"\r\n"), 1),
    "Connection: close, again": ((CLOSE, CLOSE), 2),
    "HTTP/1.0, again": ((HTTP10, HTTP10), 2),
    "HTTP/1.0 kept alive, again": ((HTTP10_KEEP, HTTP10_KEEP, HTTP10_KEEP), 1),
    "a method llhttp does not know, again": ((UNKNOWN, UNKNOWN), 2),
    "the stand-in's bytes after a method llhttp does not know": ((UNKNOWN, UNKNOWN.replace(b"post", b"PURGE")), 2),
    "an h2c offer, again": ((H2C, H2C), 2),
    # (the offer is read again without it: those bytes, when they come, are a repeat)
    "the h2c offer's request without it, after it": ((H2C, b"GET /h HTTP/1.1\r\nHost: h\r\n\r\n"), 1),
    "an upgrade, again": ((WEBSOCKET, WEBSOCKET), 1),
    "a refused request, again": (
        (b"GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",) * 2,
        1,
    ),
    "a long read, again": ((GET.replace(b"Host: h", b"Host: h\r\nX-Long: " + b"x" * 20000),) * 2, 2),
    "extra spaces, again": ((b"GET  /x HTTP/1.1\r\nHost: h\r\n\r\n",) * 2, 1),
}


@pytest.mark.parametrize(("reads", "parsed"), list(READS.values()), ids=list(READS))
def test_a_repeated_read_is_read_as_llhttp_reads_it(reads: tuple[bytes, ...], parsed: int) -> None:
    fast, reference = _both(*reads)
    assert _outcome(fast) == _outcome(reference)
    assert fast.parsed == parsed


def test_each_repeat_is_a_request_of_its_own() -> None:
    fast, _ = _both(GET, GET, GET)
    first, second, third = fast.requests
    assert first is not second and second is not third
    assert all(r.complete and r.keep_alive and r.note is None and not r.body_received for r in fast.requests)
    assert [r.raw_path for r in fast.requests] == ["/a"] * 3


def test_a_repeat_is_another_wait_for_the_deadlines() -> None:
    """The deadlines tell one wait from the next by the reader's marker: a request
    read again must change it, or a client polling on one connection would be closed as
    idle."""
    conn = Recorder()
    reader = RequestReader(conn)  # type: ignore[arg-type]
    markers = []
    for _ in range(3):
        reader.feed(GET)
        markers.append(reader.marker)
        assert not reader.head_open and reader.parsing is None
    assert len(conn.requests) == 3
    assert markers[0] is not markers[1] and markers[1] is not markers[2]


def test_a_closed_reader_does_not_repeat() -> None:
    conn = Recorder()
    reader = RequestReader(conn)  # type: ignore[arg-type]
    reader.feed(GET)
    reader.close()
    reader.feed(GET)
    assert len(conn.requests) == 1
