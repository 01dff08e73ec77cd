"""Stand-ins for the proxy layer's neighbours, for tests without sockets.

* :class:`FakeClient` implements ``kproxy.http.Connection`` and records what the proxy
  writes to it and how it hands back (fast_done / fast_fallback);
* :class:`Script` is an upstream transport that answers each request head written to an
  :class:`~kproxy.upstream.connection.UpstreamConnection` with scripted bytes (httpcore's
  ``AsyncMockStream`` idea): the connection under test parses real HTTP/1.1;
* :class:`FakePool` hands out scripted connections, idle or new, and records releases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kproxy.config.upstream import Upstream
from kproxy.http import Attachment, RawSink, Request, Resume
from kproxy.http.flow import ReadGate
from kproxy.upstream.connection import UpstreamConnection
from tests import doubles
from tests.doubles import MockTransport


def upstream(**changes: Any) -> Upstream:
    """The shared API server settings, with a fixed credential to add."""
    return doubles.upstream(**{"auth_header": b"Authorization: Bearer fixed\r\n", **changes})


class FakeClient:
    """A client connection as the proxy sees it (kproxy.http.messages.Connection)."""

    def __init__(self, peer: object = ("10.0.0.9", 5000)) -> None:
        self.transport: MockTransport | None = MockTransport(peer=peer)
        self.peer = peer
        self.attachment: Attachment | None = None
        self.reading = ReadGate()
        self.sent: list[tuple[int, bytes, bytes]] = []  # (status, header lines, body)
        self.streamed: list[bytes] = []
        self.done = 0
        self.fallbacks: list[Resume | None] = []
        self.write_paused = False
        self.sink: RawSink | None = None

    async def drain(self) -> None:
        return None

    def send_complete(
        self, request: Request | None, status: int, lines: bytes, body: bytes, *, length: int | None,
        has_date: bool, close: bool = False,
    ) -> None:  # fmt: skip
        # As the real connection does: the request's added lines follow the answer's.
        self.sent.append((status, lines + (request.added_lines if request is not None else b""), body))

    def send_head(
        self, request: Request, status: int, lines: bytes, *, length: int | None, has_date: bool, close: bool = False
    ) -> None:
        self.sent.append((status, lines + request.added_lines, b""))

    def send_body(self, data: bytes) -> None:
        self.streamed.append(data)

    def end_body(self) -> None:
        self.streamed.append(b"<end>")

    def take_stream(self, sink: RawSink) -> None:
        self.sink = sink

    def write_raw(self, data: bytes) -> None:
        self.streamed.append(data)

    def fast_done(self) -> None:
        self.done += 1

    def fast_fallback(self, request: Request, resume: Resume | None) -> None:
        self.fallbacks.append(resume)

    def request(self, head: bytes, body: bytes = b"") -> Request:
        """A request as the server would hand it over (complete, body included)."""
        lines = head.split(b"\r\n")
        method, target, version = lines[0].split(b" ")
        raw = [tuple(x.split(b": ", 1)) for x in lines[1:] if x]
        request = Request(
            self,  # type: ignore[arg-type]
            target.decode(),
            method.decode(),
            (1, 1) if version == b"HTTP/1.1" else (1, 0),
            raw,  # type: ignore[arg-type]
            True,
        )
        if body:
            request.feed(body)
        request.end()
        return request


@dataclass
class Script:
    """What an upstream connection answers: one reply per request head written."""

    replies: list[bytes | Callable[[UpstreamConnection], None]]
    heads: list[bytes] = field(default_factory=list)


class ScriptedTransport(MockTransport):
    def __init__(self, conn: UpstreamConnection, script: Script) -> None:
        super().__init__(peer=("api.example", 6443))
        self._conn = conn
        self._script = script

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        if b"\r\n\r\n" in bytes(data) and self._script.replies:
            self._script.heads.append(bytes(data))
            reply = self._script.replies.pop(0)
            loop = asyncio.get_running_loop()
            if callable(reply):
                loop.call_soon(reply, self._conn)
            else:
                loop.call_soon(self._conn.data_received, reply)

    def close(self) -> None:
        if not self.closed:
            super().close()
            asyncio.get_running_loop().call_soon(self._conn.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()


def scripted(script: Script, *, reused: bool = False) -> UpstreamConnection:
    conn = UpstreamConnection()
    conn.connection_made(ScriptedTransport(conn, script))
    conn.reused = reused
    return conn


class FakePool:
    """Idle connections first (most recent last, as the pool keeps them), then new ones."""

    def __init__(self, idle: list[UpstreamConnection] | None = None, new: list[UpstreamConnection] | None = None):
        self.idle = idle or []
        self.new = new or []
        self.released: list[UpstreamConnection] = []
        self.connects = 0

    def idle_connection(self) -> UpstreamConnection | None:
        return self.idle.pop() if self.idle else None

    async def acquire(self) -> UpstreamConnection:
        """The pool's way for exchanges: an idle connection, else a new one."""
        return self.idle_connection() or await self.connect()

    async def connect(self, *, tunnel: bool = False) -> UpstreamConnection:
        self.connects += 1
        if not self.new:
            raise AssertionError("no more scripted connections")
        return self.new.pop(0)

    def release(self, conn: UpstreamConnection) -> None:
        self.released.append(conn)


async def run(resume: Resume | None, fallback: Callable[[], Awaitable[Any]] | None = None) -> Any:
    assert resume is not None
    return await resume()


def drop_connection(conn: UpstreamConnection) -> None:
    """A scripted reply: the server closes the connection without answering."""
    assert conn.transport is not None
    conn.transport.close()
