"""kproxy.http.connection without sockets: bytes in through ``data_received``, bytes out
as a MockTransport records them, and the connection's phases in between.

tests/http/test_server.py covers the same server through real sockets and curl; these
tests pin down the state machine and the fast-path contract step by step.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Callable

import pytest

from kproxy.http import Answer, BrokenBody, ClientConnection, Handler, HTTPServer, Phase, Request, Response, Sent
from tests.doubles import MockTransport
from tests.waiting import until

GET = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Harness:
    def __init__(
        self, handler: Handler | None = None, *, read_header_timeout: float = 0.0, idle_timeout: float = 0.0
    ) -> None:
        self.seen: list[Request] = []
        self.fast_calls: list[Request] = []
        self.fast: Callable[[Request], bool] | None = None

        async def default(request: Request) -> Answer:
            self.seen.append(request)
            return Response(body=b"ok " + request.raw_path.encode())

        self.server = HTTPServer(
            handler or default,
            asyncio.get_running_loop(),
            self._fast,
            read_header_timeout=read_header_timeout,
            idle_timeout=idle_timeout,
        )
        self.transport = MockTransport()
        self.conn: ClientConnection = self.server()
        self.conn.connection_made(self.transport)

    def _fast(self, request: Request) -> bool:
        self.fast_calls.append(request)
        return self.fast(request) if self.fast is not None else False

    async def feed(self, data: bytes) -> bytes:
        self.conn.data_received(data)
        await settle()
        return self.transport.take()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    if harness.conn.phase is not Phase.CLOSED:
        harness.conn.connection_lost(None)
    await settle()


async def test_a_request_is_answered_and_the_connection_stays(h: Harness) -> None:
    out = await h.feed(GET)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nok /a")
    assert (h.conn.phase, h.conn.busy, h.transport.closed) == (Phase.ACTIVE, False, False)


async def test_a_requests_added_lines_go_on_whatever_answer_it_gets() -> None:
    from kproxy.http import StreamResponse

    async def handler(request: Request) -> Answer:
        request.added_lines = b"Vary: Origin\r\n"
        if request.raw_path == "/stream":
            response = StreamResponse(headers={"X-A": "1"})
            await response.prepare(request)
            await response.write_eof(b"chunk")
            return response
        return Response(body=b"whole", headers={"X-A": "1"})

    h = Harness(handler)
    for path in (b"/whole", b"/stream"):
        out = await h.feed(GET.replace(b"/a", path))
        head = out.partition(b"\r\n\r\n")[0]
        assert b"\r\nX-A: 1\r\nVary: Origin\r\n" in head + b"\r\n", out
    plain = Harness()
    assert b"Vary" not in await plain.feed(GET)
    for harness in (h, plain):
        harness.conn.connection_lost(None)
    await settle()


async def test_pipelined_requests_are_answered_in_order(h: Harness) -> None:
    out = await h.feed(GET.replace(b"/a", b"/1") + GET.replace(b"/a", b"/2") + GET.replace(b"/a", b"/3"))
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert out.index(b"ok /1") < out.index(b"ok /2") < out.index(b"ok /3")


async def test_too_many_pipelined_requests_pause_reading_until_the_queue_shrinks() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def slow(request: Request) -> Answer:
        await gate
        return Response()

    h = Harness(slow)
    h.conn.data_received(GET * 20)
    await settle()
    assert not h.transport.reading
    gate.set_result(None)
    await settle()
    assert h.transport.reading
    h.conn.connection_lost(None)


async def test_garbage_is_refused_after_what_came_before_then_the_connection_lingers(h: Harness) -> None:
    out = await h.feed(GET + b"GARBAGE\r\n\r\n")
    first, _, second = out.partition(b"ok /a")
    assert first.startswith(b"HTTP/1.1 200 OK") and second.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in second
    # Our FIN is out, reading goes on (and is dropped) so the client gets no reset.
    assert h.conn.phase is Phase.LINGERING and h.transport.eof_written and h.transport.reading
    assert await h.feed(b"more garbage") == b""


async def test_a_refused_connection_stays_open_for_its_answer_after_the_clients_eof() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def slow(request: Request) -> Answer:
        await gate
        return Response()

    h = Harness(slow)
    h.conn.data_received(GET + b"BAD\r\n\r\n")
    assert h.conn.phase is Phase.REJECTED
    assert h.conn.eof_received() is True  # keep our side open: the 400 is still owed
    gate.set_result(None)
    await settle()
    assert b"400 Bad Request" in h.transport.data
    h.conn.connection_lost(None)


async def test_an_oversized_line_is_431(h: Harness) -> None:
    out = await h.feed(b"GET /" + b"a" * (65 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


async def test_an_upgrade_hands_every_later_byte_to_the_sink() -> None:
    got: list[bytes] = []
    ended = asyncio.Event()

    class Sink:
        def feed_data(self, data: bytes) -> None:
            got.append(data)

        def feed_eof(self) -> None:
            ended.set()

    async def take(request: Request) -> Answer:
        request.protocol.take_stream(Sink())
        request.protocol.write_raw(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        await ended.wait()
        return Sent(101)

    h = Harness(take)
    h.conn.data_received(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nearly")
    await settle()
    assert h.conn.phase is Phase.UPGRADED
    h.conn.data_received(b"later")
    assert got == [b"early", b"later"]
    assert h.conn.eof_received() is True  # the upgraded stream may still be answered
    await settle()
    assert h.transport.data == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    h.conn.connection_lost(None)


def taking(taken: list[Request]) -> Callable[[Request], bool]:
    """A fast path that takes every request, keeping it in ``taken``."""

    def take(request: Request) -> bool:
        taken.append(request)
        return True

    return take


async def test_the_fast_path_takes_a_complete_request_and_hands_back(h: Harness) -> None:
    taken: list[Request] = []
    h.fast = taking(taken)
    h.conn.data_received(GET + GET.replace(b"/a", b"/b"))
    await settle()
    assert [r.raw_path for r in taken] == ["/a"] and h.conn.busy and not h.seen  # one at a time
    request = taken[0]
    request.protocol.send_complete(request, 200, b"", b"fast", length=None, has_date=True)
    request.protocol.fast_done()
    await settle()
    assert [r.raw_path for r in taken] == ["/a", "/b"]  # the next one goes the same way
    assert h.transport.take().endswith(b"fast")


async def test_a_fast_fallback_resumes_on_the_task(h: Harness) -> None:
    taken: list[Request] = []
    h.fast = taking(taken)

    async def rest() -> Answer:
        return Response(body=b"resumed")

    h.conn.data_received(GET)
    await settle()
    h.conn.fast_fallback(taken[0], rest)
    await settle()
    assert h.transport.take().endswith(b"resumed") and not h.seen
    # None: the whole handler runs, from the start.
    h.conn.data_received(GET)
    await settle()
    h.conn.fast_fallback(taken[1], None)
    await settle()
    assert h.transport.take().endswith(b"ok /a") and len(h.seen) == 1


async def test_a_client_that_leaves_releases_its_attachment_and_cuts_bodies(h: Harness) -> None:
    gone: list[str] = []

    class State:
        def client_gone(self) -> None:
            gone.append("gone")

    h.conn.attachment = State()
    h.conn.data_received(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    request = h.conn._reader.parsing
    assert request is not None
    h.conn.connection_lost(None)
    await settle()
    assert gone == ["gone"] and h.conn.phase is Phase.CLOSED
    assert request.content.broken and await request.read() == b"abc"


async def test_a_complete_body_is_not_broken(h: Harness) -> None:
    h.conn.data_received(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    await settle()
    [request] = h.seen
    assert request.complete and not request.content.broken


async def test_draining_ends_an_idle_connection_at_once_and_a_busy_one_after_its_answer() -> None:
    gate = asyncio.get_running_loop().create_future()

    async def slow(request: Request) -> Answer:
        await gate
        return Response(body=b"done")

    idle = Harness()
    idle.conn.shut_down()
    assert idle.transport.closed
    busy = Harness(slow)
    busy.conn.data_received(GET)
    await settle()
    busy.conn.shut_down()
    assert not busy.transport.closed
    gate.set_result(None)
    await settle()
    out = busy.transport.data
    assert out.endswith(b"done") and b"Connection: close\r\n" in out and busy.transport.eof_written
    for h in (idle, busy):
        h.conn.connection_lost(None)
    await settle()


# -- bodies that break off ---------------------------------------------------------------

POST_CHUNKED = b"POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\na\r\nbbbbbbbbbb\r\n"


@pytest.mark.parametrize(
    ("cause", "answer"),
    [
        (b"0x5\r\nhello\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
        (b"fffffffffffffffffffff\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
        (b"3\r\nhello\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
        ("eof", b""),
        (ConnectionResetError(), b""),
        (TimeoutError(), b""),
    ],
    ids=["0x5", "overflow", "longer-than-size", "eof", "reset", "timeout"],
)
async def test_a_body_that_breaks_off_is_broken_for_the_handler(cause: object, answer: bytes) -> None:
    read: list[bytes] = []
    outcome: list[BaseException] = []

    async def forward(request: Request) -> Answer:
        content = request.content  # as the relay forwards a body
        try:
            while chunk := await content.readany():
                read.append(chunk)
            if content.broken:
                raise BrokenBody("broke off")
        except (BrokenBody, asyncio.CancelledError) as exc:
            outcome.append(exc)
            raise
        return Response(body=b"complete")

    h = Harness(forward)
    h.conn.data_received(POST_CHUNKED)
    await settle()
    if isinstance(cause, bytes):
        h.conn.data_received(cause)
    elif cause == "eof":
        h.conn.eof_received()
    else:
        assert isinstance(cause, Exception)
        h.conn.connection_lost(cause)
    await settle()
    # What came (llhttp may pass on part of a chunk before it finds the error), then the
    # break — never a clean end. A client that is gone cancels the handler instead (the
    # relay's exchange then aborts the upstream connection as it unwinds).
    assert read[0] == b"bbbbbbbbbb"
    expected = asyncio.CancelledError if isinstance(cause, Exception) else BrokenBody
    assert [type(exc) for exc in outcome] == [expected]
    # A parse error is answered (the one answer on the connection); a client that left gets nothing.
    assert h.transport.data == answer if not answer else h.transport.data.startswith(answer)
    assert h.transport.data.count(b"HTTP/1.1") == (1 if answer else 0)
    if h.conn.phase is not Phase.CLOSED:
        h.conn.connection_lost(None)


# -- deadlines (kproxy.http.deadlines) -------------------------------------------------


async def test_a_head_not_complete_in_time_gets_408_and_the_connection_ends() -> None:
    h = Harness(read_header_timeout=0.1)
    h.conn.data_received(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
    await until(lambda: h.transport.eof_written, "the connection's EOF")
    assert h.transport.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert h.transport.data.endswith(b"\r\n\r\n408 Request Timeout") and h.seen == []
    h.conn.connection_lost(None)


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer() -> None:
    h = Harness(read_header_timeout=0.1)
    await until(lambda: h.transport.eof_written, "the connection's EOF")
    assert h.transport.data == b"" and h.conn.phase is Phase.LINGERING
    h.conn.connection_lost(None)


async def test_an_idle_keep_alive_connection_is_closed_without_an_answer() -> None:
    h = Harness(idle_timeout=0.1)
    assert (await h.feed(GET)).startswith(b"HTTP/1.1 200 OK")
    await until(lambda: h.transport.eof_written, "the connection's EOF")
    assert h.transport.data == b"" and len(h.seen) == 1
    h.conn.connection_lost(None)


async def test_a_request_in_progress_outlives_both_deadlines() -> None:
    release = asyncio.get_running_loop().create_future()

    async def watch(request: Request) -> Answer:
        await release  # a watch: nothing on the wire for longer than either deadline
        return Response(body=b"done")

    h = Harness(watch, read_header_timeout=0.05, idle_timeout=0.05)
    h.conn.data_received(GET)
    await asyncio.sleep(0.5)  # ten times the deadlines, several looks of the timer
    assert h.conn.phase is Phase.ACTIVE and not h.transport.eof_written and h.transport.data == b""
    release.set_result(None)
    await until(lambda: b"done" in h.transport.data, lambda: h.transport.data)
    h.conn.connection_lost(None)


# -- refused at the door ------------------------------------------------------------------


async def test_a_client_refused_at_the_door_is_answered_before_a_byte_is_read() -> None:
    peers: list[object] = []

    def admit(peer: object) -> bytes | None:
        peers.append(peer)
        return b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"

    async def never(request: Request) -> Answer:
        raise AssertionError("the handler must not run")

    server = HTTPServer(never, asyncio.get_running_loop(), admit=admit)
    transport = MockTransport(peer=("10.9.9.9", 1234))
    conn = server()
    conn.connection_made(transport)
    assert peers == [("10.9.9.9", 1234)]
    assert transport.data.endswith(b"\r\n\r\nno") and transport.eof_written
    assert conn.phase is Phase.LINGERING and conn in server.connections
    conn.data_received(GET)  # dropped unread: no request, no parse, no answer
    await settle()
    assert transport.data.count(b"HTTP/1.1") == 1
    conn.connection_lost(None)
    assert conn not in server.connections


async def test_an_admitted_client_is_served() -> None:
    h = Harness()
    h.server.admit = lambda peer: None
    conn = h.server()
    transport = MockTransport()
    conn.connection_made(transport)
    conn.data_received(GET)
    await settle()
    assert transport.data.startswith(b"HTTP/1.1 200 OK")
    conn.connection_lost(None)
    h.conn.connection_lost(None)


# -- memory -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [GET, b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", b"GET /a HTTP/1.1\r\nHo"],
    ids=["answered", "mid-body", "mid-head"],
)
async def test_a_connection_that_ended_is_freed_without_the_cycle_collector(sent: bytes) -> None:
    # Under churn, connections left to the cycle collector were a straight line of RSS
    # (kproxy runs with a frozen heap and rare full collections): the parser's callbacks
    # and the connection's task must not keep an ended connection in a reference cycle.
    gc.collect()
    gc.disable()
    try:
        server = HTTPServer(_answer_ok, asyncio.get_running_loop(), None)
        transport = MockTransport()
        protocol = server()
        protocol.connection_made(transport)
        protocol.data_received(sent)
        await settle()
        protocol.connection_lost(None)
        await settle()
        assert server.ended == 1 and not server.connections
        conn = weakref.ref(protocol)
        del protocol
        assert conn() is None, [type(r).__name__ for r in gc.get_referrers(conn())]
    finally:
        gc.enable()


async def _answer_ok(request: Request) -> Answer:
    await request.read()
    return Response(body=b"ok")
