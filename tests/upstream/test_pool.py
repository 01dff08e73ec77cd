"""The upstream HTTP/1.1 client: framing, keep-alive reuse, stale connections, interim
responses and failures, against a scripted raw upstream on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

import kproxy
from kproxy.upstream import pool as pool_module

Reply = Callable[[bytes], bytes | None]  # request head -> raw reply (None: close silently)


@dataclass
class Scripted:
    reply: Reply
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    close_after_each: bool = False
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                body = b""
                lower = head.lower()
                if b"content-length:" in lower:
                    length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                elif b"transfer-encoding: chunked" in lower:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        data = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += data[:-2]
                self.bodies.append(body)
                answer = self.reply(head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Start = Callable[[Reply], Awaitable[Scripted]]  # starts a Scripted upstream on 127.0.0.1


@pytest.fixture
async def scripted() -> AsyncIterator[Start]:
    servers: list[Scripted] = []

    async def start(reply: Reply) -> Scripted:
        s = Scripted(reply)
        s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(s)
        return s

    yield start
    for s in servers:
        assert s.server is not None
        s.server.close()


def ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def proxy_for(port: int) -> kproxy.ProxyServer:
    options = kproxy.Options.from_flags(kproxy.Flags(port=0, server=f"http://127.0.0.1:{port}"))
    server = kproxy.ProxyServer(options)
    await server.start()
    return server


async def test_keep_alive_reuse_and_head(scripted: Start) -> None:
    def reply(head: bytes) -> bytes:
        full = ok(b"0123456789")
        return full[: full.index(b"\r\n\r\n") + 4] if head.startswith(b"HEAD") else full

    up = await scripted(reply)
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            for method in ("GET", "HEAD", "GET", "HEAD", "GET"):
                async with session.request(method, f"{server.url}/api/x") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Length"] == "10"
                    assert await resp.read() == (b"0123456789" if method == "GET" else b"")
        assert up.connections == 1  # HEAD did not confuse the framing of the next response
    finally:
        await server.close()


async def test_body_until_close_and_interim_responses(scripted: Start) -> None:
    def reply(head: bytes) -> bytes:
        if b"/eof" in head:
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it until the end"
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"final")

    up = await scripted(reply)
    up.close_after_each = True
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/eof") as resp:
                assert await resp.read() == b"all of it until the end"
            async with session.get(f"{server.url}/interim") as resp:
                assert resp.status == 200 and await resp.read() == b"final"
    finally:
        await server.close()


async def test_stale_keep_alive_connection_is_retried(scripted: Start) -> None:
    up = await scripted(lambda head: ok())
    up.close_after_each = True  # the server drops every connection after answering
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                await asyncio.sleep(0.05)  # let the close reach kproxy's idle connection
                async with session.get(f"{server.url}/api") as resp:
                    assert resp.status == 200 and await resp.read() == b"hello"
        assert up.connections == 3
    finally:
        await server.close()


async def test_idle_connections_expire(scripted: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool_module, "IDLE_TIMEOUT", 0.3)
    up = await scripted(lambda head: ok())
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/a") as resp:
                await resp.read()
            await asyncio.sleep(0.6)
            async with session.get(f"{server.url}/b") as resp:
                await resp.read()
        assert up.connections == 2
    finally:
        await server.close()


async def test_request_bodies_keep_their_framing(scripted: Start) -> None:
    up = await scripted(lambda head: ok())
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/len", data=b"x" * 1000) as resp:
                assert resp.status == 200

            async def gen() -> AsyncIterator[bytes]:
                yield b"abc"
                yield b"def"

            async with session.post(f"{server.url}/chunked", data=gen()) as resp:
                assert resp.status == 200
        assert b"Content-Length: 1000" in up.heads[0] and up.bodies[0] == b"x" * 1000
        assert b"Transfer-Encoding: chunked" in up.heads[1] and up.bodies[1] == b"abcdef"
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed HTTP response"),
        (None, "closed the connection"),
    ],
)
async def test_upstream_failures_are_502_status(scripted: Start, raw: bytes | None, needle: str) -> None:
    up = await scripted(lambda head: raw)
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/api") as resp:
                assert resp.status == 502
                status = await resp.json()
                assert status["kind"] == "Status" and needle in status["message"]
    finally:
        await server.close()


async def test_truncated_body_aborts_the_client(scripted: Start) -> None:
    up = await scripted(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    up.close_after_each = True
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/api") as resp:
                assert resp.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await resp.read()
    finally:
        await server.close()


@pytest.mark.parametrize(("method", "status", "connections"), [("GET", 200, 2), ("POST", 502, 1)])
async def test_only_replayable_requests_are_retried(
    scripted: Start, method: str, status: int, connections: int
) -> None:
    seen: list[bytes] = []

    def reply(head: bytes) -> bytes | None:
        seen.append(head)
        # The second request meets a connection the server drops without answering,
        # as a server does when its idle timeout races with a reused connection.
        return None if len(seen) == 2 else ok()

    up = await scripted(reply)
    server = await proxy_for(up.port)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/api") as resp:
                await resp.read()
            async with session.request(method, f"{server.url}/api") as resp:
                assert resp.status == status
        assert up.connections == connections
    finally:
        await server.close()
