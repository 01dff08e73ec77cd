"""UpstreamConnection without sockets: a mock transport and scripted protocol calls.

Each test plays the API server's side by calling ``data_received`` / ``eof_received`` /
``connection_lost`` in a chosen order and checks what the relay would see: the head,
the body, completion, keep-alive, errors, backpressure and the fast path's ``listener``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

import pytest

from kproxy.errors import UpstreamError
from kproxy.policy.headers import parse_header_lines
from kproxy.upstream.connection import (
    _HIGH_WATER,
    _LOW_WATER,
    _TLS_PENDING,
    MAX_RESPONSE_HEAD,
    STREAM_PIECE,
    UpstreamConnection,
)
from tests.upstream.doubles import MockTransport

GUARD = 5.0  # seconds; only a hang guard, never reached by a passing test
CLOSED_EARLY = "the API server closed the connection before the response was complete"
MALFORMED = "malformed HTTP response from the API server: "

OK_RAW = b"Content-Type: text/plain\r\nContent-Length: 5\r\n"  # header lines as received
OK_HEAD = b"HTTP/1.1 200 OK\r\n" + OK_RAW + b"\r\n"
OK = OK_HEAD + b"hello"
UPGRADE_HEAD = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"


def connected(no_body: bool = False, tls: bool = False) -> tuple[UpstreamConnection, MockTransport]:
    conn = UpstreamConnection()
    transport = MockTransport(tls=tls)
    conn.connection_made(transport)
    conn.start(no_body)
    return conn, transport


def feed(conn: UpstreamConnection, *chunks: bytes) -> None:
    for chunk in chunks:
        conn.data_received(chunk)


async def one_iteration() -> None:
    """One pass of the event loop: a task just created runs up to its first await."""
    loop = asyncio.get_running_loop()
    passed = loop.create_future()
    loop.call_soon(passed.set_result, None)
    await passed


# -- heads ----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", range(1, len(OK)))
async def test_response_split_at_every_offset(offset: int) -> None:
    conn, _ = connected()
    feed(conn, OK[:offset])
    assert (conn.head is None) == (offset < len(OK_HEAD))
    feed(conn, OK[offset:])
    head = await conn.response_head()
    assert (head.status, head.raw, head.keep_alive) == (200, OK_RAW, True)
    assert parse_header_lines(head.raw) == [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")]
    assert conn.complete and conn.error is None
    assert conn.take_buffered_body() == b"hello"


async def test_response_head_waits_for_the_bytes() -> None:
    conn, _ = connected()
    waiting = asyncio.create_task(conn.response_head())
    await one_iteration()
    assert not waiting.done()
    feed(conn, OK)
    head = await asyncio.wait_for(waiting, GUARD)
    assert head.status == 200 and conn.head is head


@pytest.mark.parametrize(
    ("response", "status", "raw", "body", "keep_alive"),
    [
        (OK, 200, OK_RAW, b"hello", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, b"Content-Length: 0\r\n", b"", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n7;ext=1\r\ndefghij\r\n0\r\n\r\n",
            200,
            b"Transfer-Encoding: chunked\r\n",
            b"abcdefghij",
            True,
        ),
        (  # trailers end the message; they are not body
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
            200,
            b"Transfer-Encoding: chunked\r\n",
            b"ok",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", b"", True),
        # RFC 9112 §6.3: 204 and 304 have no body whatever the head announces.
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", 304, b"Content-Length: 100\r\n", b"", True),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 204, b"Content-Length: 7\r\n", b"", True),
        (b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", 404, None, b"no", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"Content-Length: 2\r\n", b"ok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, None, b"ok", True),
    ],
    ids=["length", "empty", "chunked", "trailers", "204", "304-length", "204-length", "close", "1.0", "1.0-keep"],
)
async def test_framed_responses(response: bytes, status: int, raw: bytes | None, body: bytes, keep_alive: bool) -> None:
    conn, transport = connected()
    feed(conn, response)
    head = await conn.response_head()
    assert head.status == status and head.keep_alive is keep_alive
    if raw is not None:
        assert head.raw == raw
    assert conn.complete and conn.error is None
    assert await conn.read_body() == body
    assert await conn.read_body() == b""
    assert not transport.closed  # deciding about reuse is the relay's (keep_alive)


async def test_next_response_on_a_kept_alive_connection() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n")
    assert conn.complete
    conn.start(False)
    assert conn.head is None and not conn.complete and not conn.got_bytes
    feed(conn, OK)
    assert (await conn.response_head()).status == 200
    assert conn.complete and conn.take_buffered_body() == b"hello"


async def test_body_chunks_as_they_arrive() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
    assert not conn.complete
    assert await conn.read_body() == b"ab"
    reading = asyncio.create_task(conn.read_body())
    await one_iteration()
    assert not reading.done()
    feed(conn, b"cd", b"ef")
    assert await asyncio.wait_for(reading, GUARD) == b"cdef"
    assert conn.complete and await conn.read_body() == b""


# -- interim responses ----------------------------------------------------------------

INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"


@pytest.mark.parametrize("byte_by_byte", [False, True])
async def test_interim_responses_are_skipped(byte_by_byte: bool) -> None:
    conn, _ = connected()
    events: list[bool] = []
    conn.listen(lambda: events.append(conn.head is not None))
    waiting = asyncio.create_task(conn.response_head())
    await one_iteration()
    data = INTERIM + OK
    feed(conn, *([data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]))
    head = await asyncio.wait_for(waiting, GUARD)
    assert head.status == 200 and head.raw == OK_RAW
    assert conn.complete and conn.take_buffered_body() == b"hello"
    assert events and all(events)  # never called while only interim heads were in


async def test_interim_head_alone_is_not_a_head() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert conn.head is None and not conn.complete and conn.got_bytes
    feed(conn, OK)
    assert conn.head is not None and conn.head.status == 200


# -- HEAD -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["length", "chunked"],
)
async def test_head_answer_has_no_body_and_the_next_response_parses(head: bytes) -> None:
    conn, _ = connected(no_body=True)
    feed(conn, head[:20], head[20:])
    answer = await conn.response_head()
    assert answer.status == 200 and answer.keep_alive
    assert conn.complete and await conn.read_body() == b""
    conn.start(False)
    feed(conn, OK)
    assert (await conn.response_head()).status == 200
    assert conn.complete and conn.take_buffered_body() == b"hello"
    conn.start(True)  # and HEAD again after a GET
    feed(conn, head)
    assert conn.complete and conn.take_buffered_body() == b""


# -- the end of the connection --------------------------------------------------------


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
async def test_body_framed_by_the_end_of_the_connection(version: bytes) -> None:
    conn, _ = connected()
    feed(conn, version + b" 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
    head = await conn.response_head()
    assert not head.keep_alive and not conn.complete
    feed(conn, b"part two")
    assert conn.eof_received() is None  # not upgraded: asyncio closes the transport
    assert not conn.complete
    conn.connection_lost(None)
    assert conn.complete and conn.error is None and conn.closed
    assert await conn.read_body() == b"part one, part two"
    assert await conn.read_body() == b""


@pytest.mark.parametrize(
    ("received", "head_arrived"),
    [
        (b"", False),  # a stale keep-alive connection: nothing at all
        (b"HTTP/1.1 200 OK\r\nContent-Le", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nonly\r\n", True),
    ],
    ids=["nothing", "mid-head", "mid-length", "mid-chunked"],
)
async def test_end_before_the_response_is_complete(received: bytes, head_arrived: bool) -> None:
    conn, _ = connected()
    if received:
        feed(conn, received)
    conn.eof_received()
    conn.connection_lost(None)
    assert conn.got_bytes is bool(received)
    assert not conn.complete and conn.closed
    assert isinstance(conn.error, UpstreamError) and conn.error.message == CLOSED_EARLY
    if head_arrived:
        assert (await conn.response_head()).status == 200
        assert await conn.read_body() == b"only"  # what came is still delivered first
        with pytest.raises(UpstreamError, match=CLOSED_EARLY):
            await conn.read_body()
    else:
        with pytest.raises(UpstreamError, match=CLOSED_EARLY):
            await conn.response_head()


async def test_waiters_learn_of_the_end() -> None:
    conn, _ = connected()
    waiting = asyncio.create_task(conn.response_head())
    await one_iteration()
    conn.connection_lost(ConnectionResetError())
    with pytest.raises(UpstreamError, match=CLOSED_EARLY):
        await asyncio.wait_for(waiting, GUARD)

    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    reading = asyncio.create_task(conn.read_body())
    await one_iteration()
    conn.connection_lost(None)
    with pytest.raises(UpstreamError, match=CLOSED_EARLY):
        await asyncio.wait_for(reading, GUARD)


@pytest.mark.parametrize(
    "response",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\n\n",  # llhttp wants CRLF line ends
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    ],
    ids=["not-http", "status", "bare-lf", "two-lengths", "no-colon"],
)
async def test_malformed_head_is_an_upstream_error(response: bytes) -> None:
    conn, transport = connected()
    events: list[Exception | None] = []
    conn.listen(lambda: events.append(conn.error))
    feed(conn, response)
    assert isinstance(conn.error, UpstreamError)
    assert conn.error.message.startswith(MALFORMED) and len(conn.error.message) > len(MALFORMED)
    assert conn.closed and transport.closed
    assert events == [conn.error]
    with pytest.raises(UpstreamError, match=MALFORMED):
        await conn.response_head()


async def test_malformed_body_fails_the_reader_after_the_head() -> None:
    conn, transport = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    reading = asyncio.create_task(conn.read_body())
    assert await asyncio.wait_for(reading, GUARD) == b"abc"
    feed(conn, b"zz\r\n")  # not a chunk size
    assert transport.closed
    with pytest.raises(UpstreamError, match=MALFORMED):
        await conn.read_body()


# -- upgrades -------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0, 10, len(UPGRADE_HEAD) - 1])
async def test_switching_protocols_keeps_the_bytes_after_the_head(split: int) -> None:
    # The head ends in the last read before switch_to_raw, as in the relay, which
    # switches in the same task step as the head wakes it.
    conn, _ = connected()
    data = UPGRADE_HEAD + b"first frame"
    feed(conn, *(part for part in (data[:split], data[split:]) if part))
    head = await conn.response_head()
    assert head.status == 101 and head.raw == b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    assert conn.error is None
    assert conn.switch_to_raw() == b"first frame"
    assert not conn.complete
    feed(conn, b"HTTP/1.1 is not parsed any more")
    assert await conn.read_body() == b"HTTP/1.1 is not parsed any more"


@pytest.mark.parametrize(("tls", "keep_writing"), [(False, True), (True, False)])
async def test_upgraded_stream_ends_with_the_peer(tls: bool, keep_writing: bool) -> None:
    conn, _ = connected(tls=tls)
    feed(conn, UPGRADE_HEAD)
    assert conn.switch_to_raw() == b""
    feed(conn, b"bytes")
    # Plain TCP half-closes (the client may still send); TLS cannot.
    assert conn.eof_received() is keep_writing
    assert conn.complete
    assert await conn.read_body() == b"bytes"
    assert await conn.read_body() == b""
    conn.connection_lost(None)
    assert conn.error is None


# -- backpressure ---------------------------------------------------------------------


@pytest.mark.parametrize("take", ["take_buffered_body", "read_body"])
async def test_reading_pauses_above_the_high_water_mark(take: str) -> None:
    conn, transport = connected()
    size = _HIGH_WATER + 10
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (size + 1))
    feed(conn, b"x" * (_HIGH_WATER - 1), b"x")
    assert transport.pauses == 0  # exactly at the mark: still reading
    feed(conn, b"y")
    assert (transport.pauses, transport.reading) == (1, False)
    feed(conn, b"z" * 9)  # a read already under way is still delivered; no second pause
    assert transport.pauses == 1
    data = conn.take_buffered_body() if take == "take_buffered_body" else await conn.read_body()
    assert len(data) == size
    assert (transport.resumes, transport.reading) == (1, True)
    feed(conn, b"!")
    assert conn.complete and conn.take_buffered_body() == b"!"
    assert transport.resumes == 1


async def test_reading_stays_paused_on_a_closed_connection() -> None:
    conn, transport = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\n\r\n", b"x" * (_HIGH_WATER + 1))
    assert transport.pauses == 1
    conn.connection_lost(None)
    assert len(conn.take_buffered_body()) == _HIGH_WATER + 1
    assert transport.resumes == 0


async def test_drain_waits_while_writing_is_paused() -> None:
    conn, transport = connected()
    resumed: list[bool] = []
    conn.on_resume_writing = lambda: resumed.append(True)
    conn.write(b"GET / HTTP/1.1\r\n\r\n")
    assert transport.written == b"GET / HTTP/1.1\r\n\r\n"
    await asyncio.wait_for(conn.drain(), GUARD)  # not paused: returns at once
    conn.pause_writing()
    assert conn.write_paused
    draining = asyncio.create_task(conn.drain())
    await one_iteration()
    assert not draining.done()
    conn.resume_writing()
    await asyncio.wait_for(draining, GUARD)
    assert not conn.write_paused and resumed == [True]


async def test_drain_does_not_hang_when_the_connection_ends() -> None:
    conn, _ = connected()
    conn.pause_writing()
    draining = asyncio.create_task(conn.drain())
    await one_iteration()
    conn.connection_lost(BrokenPipeError())
    # A writer woken by the end must not go on as if its bytes had gone out.
    with pytest.raises(UpstreamError, match=CLOSED_EARLY):
        await asyncio.wait_for(draining, GUARD)
    with pytest.raises(UpstreamError, match=CLOSED_EARLY):
        await conn.response_head()
    with pytest.raises(UpstreamError, match=CLOSED_EARLY):
        await conn.drain()  # once closed, drain says so


async def test_drain_on_a_connection_closed_by_us() -> None:
    conn, transport = connected()
    conn.abort()
    assert transport.aborted and conn.closed
    with pytest.raises(UpstreamError, match="the API server closed the connection"):
        await conn.drain()


# -- listener: how the fast path learns of its answer ---------------------------------


@pytest.mark.parametrize(
    ("script", "seen"),
    [
        # (head in, complete, error) at each call
        ([OK], [(True, True, False)]),
        (
            [OK_HEAD[:10], OK_HEAD[10:], b"hel", b"lo"],
            [(True, False, False), (True, False, False), (True, True, False)],
        ),
        ([OK_HEAD + b"he", "lost"], [(True, False, False), (True, False, True)]),
        ([b"HTTP/1.1 20", "eof", "lost"], [(False, False, True)]),
        (["lost"], [(False, False, True)]),
        ([b"garbage\r\n\r\n"], [(False, False, True)]),
        ([b"HTTP/1.1 200 OK\r\n\r\nbody", "eof", "lost"], [(True, False, False), (True, True, False)]),
    ],
    ids=["whole", "pieces", "lost-mid-body", "eof-mid-head", "lost-before-anything", "malformed", "body-to-eof"],
)
async def test_listener(script: list[bytes | str], seen: list[tuple[bool, bool, bool]]) -> None:
    conn, _ = connected()
    calls: list[tuple[bool, bool, bool]] = []
    conn.listen(lambda: calls.append((conn.head is not None, conn.complete, conn.error is not None)))
    for step in script:
        if step == "eof":
            conn.eof_received()
        elif step == "lost":
            conn.connection_lost(None)
        else:
            assert isinstance(step, bytes)
            conn.data_received(step)
    assert calls == seen


async def test_start_resets_the_exchange_but_not_the_connection() -> None:
    conn, _ = connected()
    conn.reused = True
    conn.generation = 3
    feed(conn, OK)
    assert conn.got_bytes and conn.complete
    conn.start(False)
    assert conn.head is None and not conn.complete and not conn.got_bytes and conn.error is None
    assert conn.reused and conn.generation == 3  # the pool's, not the exchange's


# -- faults Go's transport reports (and a fake would paper over) ----------------------


@pytest.mark.parametrize(
    "response",
    [
        b"\r\n" + OK,
        b"\n" + OK,
        b"HTTP/1.1 100 Continue\r\n\r\n\r\n" + OK,
    ],
    ids=["crlf-before", "lf-before", "crlf-after-100"],
)
@pytest.mark.parametrize("byte_by_byte", [False, True])
async def test_an_empty_line_before_the_status_line_is_malformed(response: bytes, byte_by_byte: bool) -> None:
    # llhttp skips it; Go's http.ReadResponse refuses it (malformed HTTP response "").
    # Taken as it was, the relayed head began with the status line a second time.
    conn, transport = connected()
    feed(conn, *([response[i : i + 1] for i in range(len(response))] if byte_by_byte else [response]))
    assert conn.head is None and transport.closed
    assert isinstance(conn.error, UpstreamError)
    assert conn.error.message == MALFORMED + "an empty line before the status line"
    with pytest.raises(UpstreamError, match=MALFORMED):
        await conn.response_head()


async def test_a_head_over_ten_mebibytes_is_refused() -> None:
    conn, transport = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"f" * 65536 + b"\r\n"
    for _ in range(MAX_RESPONSE_HEAD // len(line)):
        feed(conn, line)
    assert conn.error is None and not transport.closed  # just under Go's limit: still reading
    feed(conn, line)
    assert transport.closed and conn.head is None
    assert isinstance(conn.error, UpstreamError)
    assert conn.error.message == f"the API server's response headers exceeded {MAX_RESPONSE_HEAD} bytes"


async def test_a_head_just_under_the_limit_is_fine() -> None:
    conn, _ = connected()
    head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * (MAX_RESPONSE_HEAD - 200) + b"\r\nContent-Length: 2\r\n\r\n"
    feed(conn, head[: len(head) // 2], head[len(head) // 2 :] + b"ok")
    assert conn.complete and conn.error is None and conn.take_buffered_body() == b"ok"


async def test_bytes_on_an_idle_connection_close_it(caplog: pytest.LogCaptureFixture) -> None:
    conn, transport = connected()
    feed(conn, OK)
    assert conn.complete and not transport.closed
    with caplog.at_level(logging.WARNING, logger="kproxy"):
        feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsneaked")
    # Go's transport: "Unsolicited response received on idle HTTP channel"; the pool
    # must not hand this connection out again, and its next answer must not be these.
    assert transport.closed and conn.closed
    assert "Unsolicited bytes from the API server" in caplog.text
    assert conn.take_buffered_body() == b"hello"  # the answer that was due is intact


async def test_bytes_behind_a_complete_answer_in_the_same_read_close_the_connection() -> None:
    conn, transport = connected()
    feed(conn, OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
    head = await conn.response_head()
    assert head.status == 200 and conn.complete and conn.error is None
    assert conn.take_buffered_body() == b"hello"
    assert transport.closed and conn.closed


async def test_a_body_after_a_head_answer_closes_the_connection() -> None:
    conn, transport = connected(no_body=True)
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert conn.complete and not transport.closed
    feed(conn, b"hello")  # the server sent a body with its HEAD answer
    assert transport.closed and conn.take_buffered_body() == b""


async def test_start_forgets_what_an_earlier_exchange_left() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf!")
    conn.start(False)  # (the relay aborts such a connection; even so, nothing carries over)
    assert conn.take_buffered_body() == b""


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", True),
    ],
    ids=["1.1", "1.1-close", "1.1-close-listed", "1.0", "1.0-keep-alive"],
)
async def test_a_head_answer_without_length_keeps_the_connection_as_go_would(head: bytes, keep_alive: bool) -> None:
    # llhttp, not knowing the request was HEAD, thinks such a body runs to the close.
    conn, transport = connected(no_body=True)
    feed(conn, head)
    answer = await conn.response_head()
    assert conn.complete and answer.keep_alive is keep_alive
    conn.start(False)
    feed(conn, OK)
    assert conn.complete and conn.take_buffered_body() == b"hello" and not transport.closed


@pytest.mark.parametrize("split", [0, 20, 45])
async def test_a_101_without_connection_upgrade_is_an_upgrade(split: int) -> None:
    # llhttp reports it as an error once the head is in; Go's reverse proxy relays it.
    conn, transport = connected()
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe-1"
    feed(conn, *(part for part in (data[:split], data[split:]) if part))
    head = await conn.response_head()
    assert head.status == 101 and conn.error is None and not transport.closed
    feed(conn, b"frame-2")  # arrived before the relay switched over: kept, in order
    assert conn.switch_to_raw() == b"frame-1"
    assert await conn.read_body() == b"frame-2"


# -- memory ---------------------------------------------------------------------------


async def test_read_body_with_a_limit_hands_out_pieces_and_keeps_the_upstream_paused() -> None:
    # A slow client holds back the API server: the relay takes a piece at a time, and
    # reading resumes only once little is left, not after each piece.
    conn, transport = connected()
    body = bytes(range(256)) * (4 * _HIGH_WATER // 256)
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), body)
    assert transport.pauses == 1
    pieces = []
    while conn._buffered > _LOW_WATER:
        pieces.append(await conn.read_body(STREAM_PIECE // 4))
        assert len(pieces[-1]) == STREAM_PIECE // 4
        assert transport.resumes == (1 if conn._buffered < _LOW_WATER else 0)
    pieces.append(await conn.read_body(STREAM_PIECE // 4))
    assert b"".join(pieces) == body and conn.complete
    assert await conn.read_body(STREAM_PIECE) == b""


async def test_read_body_with_a_limit_splits_and_joins_received_parts() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"abc", b"defg", b"hij")
    assert [await conn.read_body(5), await conn.read_body(5), await conn.read_body(5)] == [b"abcde", b"fghij", b""]


async def test_the_tls_read_buffer_below_is_as_small_as_ours() -> None:
    # uvloop's TLS transport buffers up to 256 KiB of encrypted bytes by default.
    class TLSTransport(MockTransport):
        limits: tuple[int | None, int | None] | None = None

        def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
            self.limits = (high, low)

    transport = TLSTransport(tls=True)
    UpstreamConnection().connection_made(transport)
    # Smaller still than our own high-water mark: what waits encrypted below us while a
    # slow client holds reading paused (see kproxy.upstream.tls_reads).
    assert transport.limits == (_TLS_PENDING, None) and _TLS_PENDING <= _HIGH_WATER
    UpstreamConnection().connection_made(MockTransport())  # plain transports: no such call


@pytest.mark.parametrize("end", ["complete", "cut", "malformed", "aborted"])
async def test_an_ended_connection_is_freed_without_the_cycle_collector(end: str) -> None:
    gc.collect()
    gc.disable()
    try:
        conn, _ = connected()
        feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        if end == "complete":
            feed(conn, b"defghij")
            conn.connection_lost(None)
        elif end == "cut":
            conn.connection_lost(None)
            assert await conn.read_body() == b"abc"
            with pytest.raises(UpstreamError, match=CLOSED_EARLY):
                await conn.read_body()
        elif end == "malformed":
            conn, _ = connected()
            feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
            with pytest.raises(UpstreamError, match=MALFORMED):
                await conn.response_head()
            conn.connection_lost(None)
        else:
            conn.abort()
            conn.connection_lost(None)
        ref = weakref.ref(conn)
        del conn
        assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
    finally:
        gc.enable()


async def test_a_stored_error_is_raised_as_a_new_exception_each_time() -> None:
    # Raising the stored exception again would chain tracebacks, and their frames (the
    # connection among their locals), into a cycle that outlives the connection.
    conn, _ = connected()
    conn.connection_lost(None)
    errors = []
    for _ in range(2):
        with pytest.raises(UpstreamError) as caught:
            await conn.response_head()
        errors.append(caught.value)
    assert errors[0] is not errors[1] and errors[0] is not conn.error
    assert type(errors[0]) is type(conn.error) and errors[0].message == errors[1].message == CLOSED_EARLY
    fresh = UpstreamConnection()
    assert fresh.failure().message == "the API server closed the connection"


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 7, 11, 100])
async def test_read_body_pieces_of_any_size_give_back_the_body_in_order(limit: int) -> None:
    parts = [b"abc", b"d", b"efghijk", b"lmnopqrstuvwxyz", b"0", b"123456789"]
    body = b"".join(parts)
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), *parts)
    pieces = []
    while piece := await conn.read_body(limit):
        assert len(piece) <= limit
        pieces.append(piece)
    assert b"".join(pieces) == body and conn._buffered == 0


async def test_what_is_left_after_pieces_is_taken_whole() -> None:
    conn, _ = connected()
    feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", b"abcdefgh")
    assert await conn.read_body(3) == b"abc"
    assert conn.take_buffered_body() == b"defgh"
    feed(conn, b"ijkl")
    assert await conn.read_body(2) == b"ij"
    assert await conn.read_body() == b"kl"
