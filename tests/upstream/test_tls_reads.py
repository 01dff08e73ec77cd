"""TLS with bounded reads (kproxy.upstream.tls_reads) under the real TLS layers.

An API server stand-in in this process (asyncio's TLS server, a trustme certificate, on
127.0.0.1) sends an 8 MiB answer to an :class:`UpstreamConnection` dialled with
``create_connection``; nothing reads the body for a while, as with a slow client. Each
test runs under uvloop (kproxy's loop) and asyncio's own loop: both have an
``SSLProtocol`` with a 256 KiB read buffer of its own. What is asserted is what waits in
kproxy while the answer is paused — decrypted in the connection, encrypted in the TLS
layer — not how long anything takes.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import pytest
import trustme
import uvloop

from kproxy.upstream.connection import _HIGH_WATER, _NO_PARSER, _TLS_PENDING, UpstreamConnection
from kproxy.upstream.tls_reads import SOCKET_READ, BoundedReads, create_connection, start_tls

GUARD = 30.0  # seconds; only a hang guard, never reached by a passing test
ANSWER = 8 << 20
PATTERN = bytes(range(256)) * 256  # 64 KiB


def run(loop: str, scenario: Callable[[], Awaitable[None]]) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(scenario(), GUARD))


@pytest.fixture(scope="module")
def pki() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.example").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


class Server:
    """Answers one request with an 8 MiB body, written as fast as the peer takes it;
    listens on 127.0.0.1 (``port``) while used as an async context manager, and on the
    way out waits for the one exchange to end."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.sent = 0
        self.done = asyncio.Event()
        self._context = context
        self._listener: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        self._listener = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self._context)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._listener is not None
        self._listener.close()
        await self.done.wait()
        await self._listener.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % ANSWER)
            while self.sent < ANSWER:
                writer.write(PATTERN)
                self.sent += len(PATTERN)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.done.set()
            writer.close()


@runtime_checkable
class ReadBuffered(Protocol):
    """A TLS transport that tells what it holds read but not yet decrypted: both loops'
    (asyncio's ``_SSLProtocolTransport``, uvloop's) have it; ``asyncio.Transport`` does not."""

    def get_read_buffer_size(self) -> int: ...


async def stalled(server: Server) -> None:
    """Until the server can send no more: nothing in between reads what it sent."""
    last, quiet = -1, 0
    while quiet < 20:
        await asyncio.sleep(0.01)
        quiet = quiet + 1 if server.sent == last else 0
        last = server.sent


async def dial(port: int, client: ssl.SSLContext) -> tuple[asyncio.Transport, UpstreamConnection]:
    transport, conn = await create_connection(
        UpstreamConnection, "127.0.0.1", port, ssl_context=client, server_hostname="api.example"
    )
    conn.start(False)
    conn.write(b"GET /api/v1/pods HTTP/1.1\r\nHost: api.example\r\n\r\n")
    return transport, conn


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_paused_answer_holds_little_and_arrives_whole(loop: str, pki: tuple[ssl.SSLContext, ...]) -> None:
    async def scenario() -> None:
        async with Server(pki[0]) as server:
            transport, conn = await dial(server.port, pki[1])
            try:
                head = await conn.response_head()
                assert head.status == 200
                await stalled(server)  # nobody reads the body: the answer is paused
                # Decrypted: the high-water mark plus one read, which is at most what the TLS
                # layer held encrypted (its mark plus one socket read); encrypted, below us:
                # the same (a 256 KiB read and all of it decrypted at once, without tls_reads).
                assert 0 < conn._buffered <= _HIGH_WATER + _TLS_PENDING + SOCKET_READ
                assert isinstance(transport, ReadBuffered)
                assert transport.get_read_buffer_size() <= _TLS_PENDING + SOCKET_READ
                assert server.sent < ANSWER
                digest, size = hashlib.sha256(), 0
                while chunk := await conn.read_body(64 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                expected = hashlib.sha256(PATTERN * (ANSWER // len(PATTERN))).digest()
                assert size == ANSWER and digest.digest() == expected
            finally:
                conn.abort()

    run(loop, scenario)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_socket_reads_go_into_the_first_bytes_of_the_tls_layers_buffer(
    loop: str, pki: tuple[ssl.SSLContext, ...]
) -> None:
    async def scenario() -> None:
        async with Server(pki[0]) as server:
            raw, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", server.port)
            conn = UpstreamConnection()
            tls = await start_tls(raw, conn, pki[1], "api.example")
            try:
                assert tls is not None and conn.transport is tls  # connection_made: called with the TLS transport
                # Decrypted bytes reach the connection directly (no Python frame between).
                assert tls.get_protocol() is conn
                between = raw.get_protocol()
                assert isinstance(between, BoundedReads)
                layer: Any = between._layer
                view = between.get_buffer(1 << 20)
                assert len(view) == SOCKET_READ
                # Per socket read, callables of C: the same view for any size asked, and the
                # layer's own buffer_updated (no Python frame of ours in between).
                assert between.get_buffer(64 * 1024) is view and between.get_buffer(-1) is view
                assert between.buffer_updated == layer.buffer_updated
                # The same memory as the layer's own buffer, where its buffer_updated reads.
                whole = layer.get_buffer(1 << 20)
                view[:4] = b"kpxy"
                assert bytes(whole[:4]) == b"kpxy"
                conn.start(False)
                conn.write(b"GET / HTTP/1.1\r\nHost: api.example\r\n\r\n")
                assert (await conn.response_head()).status == 200
            finally:
                conn.abort()

    run(loop, scenario)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_an_ended_tls_connection_is_freed_without_the_cycle_collector(
    loop: str, pki: tuple[ssl.SSLContext, ...]
) -> None:
    """A connection (its TLS state, its buffers, BoundedReads below the TLS layer) is
    freed by refcounting once it ended: the protocol's references to the transports
    must not make a cycle that waits for the cycle collector."""

    async def scenario() -> None:
        async with Server(pki[0]) as server:
            gc.collect()
            gc.disable()
            try:
                _, conn = await dial(server.port, pki[1])
                await conn.response_head()
                assert await conn.read_body()
                conn.abort()
                for _ in range(1000):  # until connection_lost (a few loop iterations)
                    if conn._parser is _NO_PARSER:
                        break
                    await asyncio.sleep(0)
                assert conn._parser is _NO_PARSER
                for _ in range(5):  # let the loop drop its handles
                    await asyncio.sleep(0)
                ref = weakref.ref(conn)
                del conn
                assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
            finally:
                gc.enable()

    run(loop, scenario)
