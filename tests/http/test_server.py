"""kproxy.http.server, the client-facing HTTP/1.1 server: framing, keep-alive, pipelining,
request bodies, limits, errors, disconnects, graceful shutdown and upgrades.

Each test hosts a handler with HTTPServer on 127.0.0.1 port 0 and talks to it as raw
bytes (or with curl), so status lines, headers and framing are checked as sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import pytest

from kproxy.http import Answer, Handler, HTTPServer, Request, Response, Sent, StreamResponse, status_line

WAIT = 5.0  # hang guard for a single read


@dataclass
class Reply:
    status_line: bytes
    headers: list[tuple[str, str]]
    body: bytes
    wire: bytes = b""  # the body exactly as framed on the wire

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, head_only: bool = False) -> Reply:
        return await asyncio.wait_for(self._reply(head_only), WAIT)

    async def head(self) -> Reply:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        first, *lines = raw[:-4].split(b"\r\n")
        fields = [tuple(line.decode("latin-1").split(": ", 1)) for line in lines]
        return Reply(first, [(k, v) for k, v in fields], b"")

    async def _reply(self, head_only: bool) -> Reply:
        reply = await self.head()
        if head_only or reply.status in (204, 304) or reply.status < 200:
            return reply
        length = reply.get("Content-Length")
        if length is not None:
            reply.body = reply.wire = await self.reader.readexactly(int(length))
        elif reply.get("Transfer-Encoding") == "chunked":
            reply.body, reply.wire = await self.chunks()
        else:
            reply.body = reply.wire = await self.reader.read()
        return reply

    async def chunks(self) -> tuple[bytes, bytes]:
        body, wire = b"", b""
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line, 16)
            data = await self.reader.readexactly(size + 2)
            wire += size_line + data
            if size == 0:
                return body, wire
            body += data[:-2]

    async def rest(self) -> bytes:  # fails the test if the server does not close
        return await asyncio.wait_for(self.reader.read(), WAIT)

    async def get(self, target: str = "/", extra: str = "", version: str = "1.1") -> Reply:
        await self.send(f"GET {target} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode())
        return await self.reply()


@dataclass
class Served:
    port: int
    http: HTTPServer
    clients: list[Client] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)  # as the handler got them

    async def connect(self) -> Client:
        client = Client(*await asyncio.open_connection("127.0.0.1", self.port))
        self.clients.append(client)
        return client


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[Served, Client]]:
    async def recorded(request: Request) -> Answer:
        served.requests.append(request)
        return await handler(request)

    loop = asyncio.get_running_loop()
    http = HTTPServer(recorded, loop)
    server = await loop.create_server(http, "127.0.0.1", 0)
    served = Served(server.sockets[0].getsockname()[1], http)
    try:
        yield served, await served.connect()
    finally:
        for client in served.clients:
            client.writer.close()
            with suppress(ConnectionError):
                await client.writer.wait_closed()
        server.close()
        await http.shutdown(1.0)
        await server.wait_closed()


async def hello(request: Request) -> Answer:
    return Response(body=b"hello " + request.raw_path.encode())


async def streamed(request: Request) -> Answer:
    response = await StreamResponse(headers={"X-Kind": "stream"}).prepare(request)
    await response.write(b"hello")
    await response.write(b", world")
    await response.write_eof()
    return response


async def echo(request: Request) -> Answer:
    return Response(body=digest(await request.read()))


def digest(data: bytes) -> bytes:
    return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())


def chunked(data: bytes, size: int) -> bytes:
    return (
        b"".join(b"%x\r\n%b\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size))
        + b"0\r\n\r\n"
    )


# --- Responses and keep-alive -------------------------------------------------------------
async def test_response_framing_date_no_server_and_keep_alive_reuse() -> None:
    async with serve(hello) as (s, c):
        r = await c.get("/one")
        assert r.status_line == b"HTTP/1.1 200 OK"
        assert (r.body, r.get("Content-Length")) == (b"hello /one", "10")
        assert r.get("Server") is None and r.get("Connection") is None
        date = r.get("Date")
        assert date is not None and abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5
        r = await c.get("/two")
        assert (r.status, r.body) == (200, b"hello /two")
        assert s.requests[0].protocol is s.requests[1].protocol


async def test_curl_reuses_one_connection_for_two_urls() -> None:
    async with serve(hello) as (s, _):
        base = f"http://127.0.0.1:{s.port}"
        proc = await asyncio.create_subprocess_exec(
            "curl",
            "-sS",
            "--http1.1",
            "--noproxy",
            "*",
            f"{base}/a",
            f"{base}/b",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err
        assert out == b"hello /ahello /b"
        assert len({id(r.protocol) for r in s.requests}) == 1


async def test_handler_headers_text_and_framing_rules() -> None:
    async def handler(request: Request) -> Answer:
        # Framing is the connection's business: the handler's Transfer-Encoding and
        # Connection are dropped; its own Date replaces the server's.
        return Response(
            599,
            body="é".encode(),
            headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "x"),
                ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ],
        )

    async with serve(handler) as (s, c):
        r = await c.get()
        assert r.status_line == b"HTTP/1.1 599 status code 599" and status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
        assert r.get("Transfer-Encoding") is None
        assert r.all("Date") == ["Tue, 14 Nov 2023 22:13:20 GMT"] and r.get("Connection") is None
        assert (r.get("Content-Type"), r.get("Content-Length"), r.body) == (
            "text/plain; charset=utf-8",
            "2",
            "é".encode(),
        )


@pytest.mark.parametrize("kind", ["response", "explicit-length", "stream"])
async def test_head_keeps_length_and_sends_no_body(kind: str) -> None:
    async def handler(request: Request) -> Answer:
        if kind == "response":
            return Response(body=b"0123456789")
        if kind == "explicit-length":
            return Response(headers={"Content-Length": "42"})
        response = await StreamResponse().prepare(request)
        await response.write(b"ignored")
        return response

    async with serve(handler) as (s, c):
        await c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = await c.reply(head_only=True)
        assert r.status == 200 and r.get("Transfer-Encoding") is None
        assert r.get("Content-Length") == {"response": "10", "explicit-length": "42", "stream": None}[kind]
        # No body bytes: the next answer on the connection starts right after the head.
        await c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await c.reply(head_only=True)).status_line == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_have_no_length_and_no_body(status: int, stream: bool) -> None:
    async def handler(request: Request) -> Answer:
        if request.path == "/next":
            return Response(body=b"next")
        if not stream:
            return Response(status, body=b"dropped")
        response = await StreamResponse(status).prepare(request)
        await response.write(b"dropped")
        return response

    async with serve(handler) as (s, c):
        r = await c.get()
        assert r.status == status
        assert r.get("Content-Length") is None and r.get("Transfer-Encoding") is None
        assert (await c.get("/next")).body == b"next"


async def test_stream_without_length_is_chunked_on_http11() -> None:
    async with serve(streamed) as (s, c):
        r = await c.get()
        assert r.all("Transfer-Encoding") == ["chunked"] and r.get("Content-Length") is None
        assert r.get("X-Kind") == "stream" and r.get("Connection") is None
        assert r.wire == b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
        assert (await c.get()).body == b"hello, world"


@pytest.mark.parametrize("extra", ["", "Connection: keep-alive\r\n"])
async def test_stream_without_length_on_http10_ends_with_the_connection(extra: str) -> None:
    async with serve(streamed) as (s, c):
        await c.send(f"GET / HTTP/1.0\r\n{extra}\r\n".encode())
        r = await c.head()
        assert r.status_line == b"HTTP/1.1 200 OK"
        assert r.all("Connection") == ["close"]
        assert r.get("Transfer-Encoding") is None and r.get("Content-Length") is None
        assert await c.rest() == b"hello, world"


async def test_connection_keep_alive_and_close_headers() -> None:
    async with serve(hello) as (s, c):
        r = await c.get("/a", "Connection: keep-alive\r\n", version="1.0")
        assert r.all("Connection") == ["keep-alive"] and r.body == b"hello /a"
        r = await c.get("/b", "Connection: keep-alive\r\n", version="1.0")
        assert r.body == b"hello /b"
        # Without keep-alive, HTTP/1.0 ends the connection after the answer.
        r = await c.get("/c", version="1.0")
        assert r.all("Connection") == ["close"] and r.body == b"hello /c"
        assert await c.rest() == b""
        c = await s.connect()
        r = await c.get("/x", "Connection: close\r\n")
        assert r.all("Connection") == ["close"] and r.body == b"hello /x"
        assert await c.rest() == b""


# --- Pipelining --------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2, 3])
async def test_pipelined_requests_are_answered_in_order(count: int) -> None:
    async def handler(request: Request) -> Answer:
        n = int(request.path[1:])
        # Earlier requests take longer, so an answer out of order would show.
        await asyncio.sleep(0.02 * (count - n))
        data = await request.read()
        return Response(body=b"%d:%b" % (n, data))

    requests = [
        b"GET /0 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody",
        b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n",
    ][:count]
    async with serve(handler) as (s, c):
        await c.send(b"".join(requests))
        bodies = [(await c.reply()).body for _ in range(count)]
        assert bodies == [b"0:", b"1:body", b"2:"][:count]


# --- Request bodies -------------------------------------------------------------------------
async def test_content_length_and_chunked_bodies_are_read_fully() -> None:
    async with serve(echo) as (s, c):
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
        assert (await c.reply()).body == digest(b"hello world")
        await c.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"abcdefg", 3))
        assert (await c.reply()).body == digest(b"abcdefg")


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_large_body_in_pieces_with_read_backpressure(framing: str) -> None:
    body = bytes(range(256)) * (8 * 4096)  # 8 MiB
    first: list[int] = []

    async def handler(request: Request) -> Answer:
        # A slow reader: the server must stop reading instead of buffering it all.
        await asyncio.sleep(0.2)
        data = await request.content.readany()
        first.append(len(data))
        return Response(body=digest(data + await request.read()))

    async with serve(handler) as (s, c):
        head = b"POST / HTTP/1.1\r\nHost: t\r\n"
        if framing == "length":
            payload = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        else:
            payload = head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 100_000)
        for i in range(0, len(payload), 65536):
            await c.send(payload[i : i + 65536])
        r = await c.reply()
        assert r.body == digest(body)
        assert 0 < first[0] <= 1024 * 1024


async def test_unread_body_closes_the_connection_after_the_answer() -> None:
    async with serve(hello) as (s, c):
        # A whole body the handler ignores, then a pipelined request that must not be parsed.
        await c.send(
            b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        r = await c.reply()
        assert r.body == b"hello /p"
        assert await c.rest() == b""
        # A body still on its way.
        c = await s.connect()
        await c.send(b"POST /q HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\npartial")
        assert (await c.reply()).body == b"hello /q"
        assert await c.rest() == b""


def exchange(port: int, payload: bytes) -> bytes:
    # A blocking socket, sending in a thread while reading: asyncio's StreamReader raises a
    # reset before the bytes it already holds, and a server that stops reading may reset.
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:

        def send() -> None:
            with suppress(OSError):  # the server stopped reading and closed: only its answer matters
                sock.sendall(payload)

        sender = threading.Thread(target=send)
        sender.start()
        got = b""
        with suppress(ConnectionResetError):  # a close with unread bytes resets, after the answer
            while data := sock.recv(65536):
                got += data
        sender.join(WAIT)
        return got


async def test_large_unread_body_answer_still_reaches_the_client() -> None:
    async with serve(hello) as (s, _):
        payload = b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%b" % (4 << 20, bytes(4 << 20))
        got = await asyncio.wait_for(asyncio.to_thread(exchange, s.port, payload), 2 * WAIT)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nhello /big")


# --- Limits and malformed requests --------------------------------------------------------
async def test_garbage_gets_400_and_close_after_earlier_answers() -> None:
    async with serve(hello) as (s, c):
        await c.send(b"GARBAGE\r\n\r\n")
        r = await c.reply()
        assert r.status_line == b"HTTP/1.1 400 Bad Request" and r.all("Connection") == ["close"]
        assert r.body.startswith(b"400 Bad Request")
        assert await c.rest() == b""
        # What came before the garbage is answered first.
        c = await s.connect()
        await c.send(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
        assert (await c.reply()).body == b"hello /ok"
        assert (await c.reply()).status == 400
        assert await c.rest() == b""


@pytest.mark.parametrize(
    ("lines", "size", "status"),
    [
        (1, 65 * 1024, 431),  # one header line over 64 KiB
        (20, 60 * 1024, 431),  # 1.2 MiB in all, each line under 64 KiB
        (1, 60 * 1024, 200),
    ],
)
async def test_header_size_limits(lines: int, size: int, status: int) -> None:
    async def handler(request: Request) -> Answer:
        return Response(body=b"%d" % sum(len(v) for v in request.headers.getall("X-Big")))

    async with serve(handler) as (s, _):
        big = b"X-Big: " + b"a" * size + b"\r\n"
        payload = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + big * lines + b"\r\n"
        got = await asyncio.wait_for(asyncio.to_thread(exchange, s.port, payload), 2 * WAIT)
        head, _, body = got.partition(b"\r\n\r\n")
        if status == 431:
            assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
            assert b"\r\nConnection: close" in head and body == b"431 Request Header Fields Too Large"
        else:
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"%d" % size


# --- Handler failures and disconnects ---------------------------------------------------------
async def test_handler_exception_gives_500_and_close() -> None:
    async def handler(request: Request) -> Answer:
        raise RuntimeError("boom")

    async with serve(handler) as (s, c):
        r = await c.get()
        assert r.status_line == b"HTTP/1.1 500 Internal Server Error" and r.all("Connection") == ["close"]
        assert await c.rest() == b""


async def test_exception_after_stream_head_cuts_the_connection() -> None:
    async def handler(request: Request) -> Answer:
        response = await StreamResponse().prepare(request)
        await response.write(b"part")
        raise RuntimeError("boom")

    async with serve(handler) as (s, c):
        await c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = await c.head()
        assert r.status == 200 and r.get("Transfer-Encoding") == "chunked"
        # The chunked body never ends: no last chunk, just the connection's end.
        assert await c.rest() == b"4\r\npart\r\n"


async def test_client_disconnect_cancels_the_handler() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(request: Request) -> Answer:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Response()

    async with serve(handler) as (s, c):
        await c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.wait_for(started.wait(), WAIT)
        c.writer.close()
        await asyncio.wait_for(cancelled.wait(), WAIT)
        await asyncio.sleep(0)
        assert not s.http.connections


# --- Graceful shutdown -------------------------------------------------------------------------
async def test_shutdown_closes_idle_keep_alive_connections_at_once() -> None:
    async with serve(hello) as (s, c):
        clients = [await s.connect() for _ in range(3)]
        for client in clients:
            assert (await client.get()).status == 200
        clients.append(c)  # connected, no request yet
        t0 = time.monotonic()
        await s.http.shutdown(5.0)
        assert time.monotonic() - t0 < 1.0
        for client in clients:
            assert await client.rest() == b""


async def test_shutdown_lets_a_streamed_answer_finish_then_closes() -> None:
    async def handler(request: Request) -> Answer:
        response = await StreamResponse().prepare(request)
        for i in range(6):
            await response.write(b"part%d;" % i)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    async with serve(handler) as (s, c):
        idle = await s.connect()
        assert (await idle.get()).status == 200  # an idle keep-alive peer next to it
        await c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = await c.head()
        t0 = time.monotonic()
        shutdown = asyncio.create_task(s.http.shutdown(5.0))
        body, _ = await asyncio.wait_for(c.chunks(), WAIT)
        assert r.status == 200 and body == b"".join(b"part%d;" % i for i in range(6))
        assert await c.rest() == b"" and await idle.rest() == b""
        await shutdown
        assert time.monotonic() - t0 < 2.0


async def test_shutdown_cuts_a_handler_that_never_ends() -> None:
    cancelled = asyncio.Event()

    async def handler(request: Request) -> Answer:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return Response()

    async with serve(handler) as (s, c):
        await c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await s.http.shutdown(0.3)
        assert 0.25 < time.monotonic() - t0 < 2.0
        await asyncio.wait_for(cancelled.wait(), WAIT)
        with suppress(ConnectionResetError):  # an abort may reach the client as a reset
            assert await c.rest() == b""


# --- Upgrades ------------------------------------------------------------------------------------
class Sink:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received: list[bytes] = []

    def feed_data(self, data: bytes) -> None:
        self.received.append(data)
        self.queue.put_nowait(data)

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


async def test_upgrade_hands_the_raw_stream_over_in_order() -> None:
    sinks: list[Sink] = []

    async def handler(request: Request) -> Answer:
        assert request.upgraded
        sink = Sink()
        sinks.append(sink)
        request.protocol.take_stream(sink)
        request.protocol.write_raw(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        while (data := await sink.queue.get()) is not None:
            request.protocol.write_raw(data)
        return Sent(101)

    async with serve(handler) as (s, c):
        await c.send(b"GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nfirst|second|")
        r = await c.head()
        assert r.status == 101 and r.get("Upgrade") == "x"
        assert await asyncio.wait_for(c.reader.readexactly(13), WAIT) == b"first|second|"
        await c.send(b"GET / HTTP/1.1\r\n\r\n")  # not HTTP any more: echoed as is
        assert await asyncio.wait_for(c.reader.readexactly(18), WAIT) == b"GET / HTTP/1.1\r\n\r\n"
        c.writer.write_eof()
        assert await c.rest() == b""
        assert b"".join(sinks[0].received) == b"first|second|GET / HTTP/1.1\r\n\r\n"


# --- Request helpers --------------------------------------------------------------------------------
async def test_request_helpers() -> None:
    async def handler(request: Request) -> Answer:
        request.note = "echoed"  # the handler's words for the access log
        return Response(body=await request.read())

    async with serve(handler) as (s, c):
        await c.send(
            b"PUT /a%20b/c%2Fd?x=%20y HTTP/1.1\r\nHost: t\r\nX-Foo: one\r\nx-foo: two\r\nContent-Length: 3\r\n\r\nabc"
        )
        assert (await c.reply()).body == b"abc"
        r = s.requests[0]
        assert (r.method, r.version, r.raw_path) == ("PUT", (1, 1), "/a%20b/c%2Fd?x=%20y")
        assert r.path == "/a b/c/d"
        assert r.headers.getall("X-FOO") == ["one", "two"] and r.headers["host"] == "t"
        assert r.header(b"x-foo") == b"one" and r.header(b"x-bar") is None
        assert r.remote == "127.0.0.1" and r.content_length == 3
        assert r.note == "echoed"
        assert r.complete and r.keep_alive and not r.upgraded


def test_http_date_matches_email_utils() -> None:
    from email.utils import formatdate

    from kproxy.http import http_date

    for seconds in (0, 951_782_400, 1_700_000_000.5, 4_102_444_799):
        assert http_date(seconds) == formatdate(seconds, usegmt=True)
