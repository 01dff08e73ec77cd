"""The HTTP/2 lane: long-running requests share a few HTTP/2 connections to the API server.

In: the :class:`~kproxy.upstream.dialer.Dialer` (the one route to the API server, asked
for ALPN ``h2`` and ``http/1.1`` here) and request heads as the relay builds them for
HTTP/1.1 (turned into HTTP/2 fields by :mod:`kproxy.policy.h2_fields`). Out: a stream
whose answer's head has arrived (:class:`~kproxy.upstream.h2_connection.H2Stream`), or
None when the API server does not speak HTTP/2 — the relay then uses the HTTP/1.1 pool.

As Go's HTTP/2 connection pool does (``docs/upstream-connections.md`` §2): the first
connection with room takes a new stream; when all are full, one new connection is
dialled at a time and everyone waiting shares it, so a thousand watches opened at once
need ten connections to a server allowing a hundred streams each, not a thousand. A
stream the server refused or cut off with ``GOAWAY`` before processing it is sent again
on another connection, a few times at most. With a rotating client certificate, no new
streams go to connections made with an old one, which close when their last stream ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from kproxy.errors import UpstreamTimeout
from kproxy.policy.h2_fields import request_fields
from kproxy.upstream.dialer import Dialer

if TYPE_CHECKING:
    # Imported with the first long-running request: h2 is not needed to start serving.
    from kproxy.upstream.h2_connection import H2Connection, H2Stream

__all__ = ["ALPN_H2", "H2Lane"]

ALPN_H2 = ("h2", "http/1.1")
_ATTEMPTS = 5  # a refused stream is sent again this many times at most


class H2Lane:
    """HTTP/2 connections to the API server for long-running requests."""

    def __init__(self, dialer: Dialer) -> None:
        self._dialer = dialer
        self._tls = dialer.tls
        self._conns: list[H2Connection] = []
        self._dial: asyncio.Task[None] | None = None
        self._closed = False
        self.unsupported = False  # the API server answered ALPN without h2
        self.dials = 0

    @property
    def connections(self) -> int:
        """Open HTTP/2 connections (for tests and the benchmark)."""
        return sum(1 for conn in self._conns if not conn.closed)

    async def request(self, head: bytes) -> H2Stream | None:
        """Send a request without a body; its stream once the answer's head is in.

        None: the API server does not speak HTTP/2. Raises UpstreamError."""
        from kproxy.upstream.h2_connection import StreamRefused

        fields = request_fields(head)
        for attempt in range(_ATTEMPTS):
            stream = await self._stream(fields)
            if stream is None:
                return None
            try:
                await stream.response_head()
            except StreamRefused:
                stream.close()
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            except BaseException:
                stream.close()
                raise
            return stream
        raise AssertionError("unreachable")

    async def _stream(self, fields: list[tuple[bytes, bytes]]) -> H2Stream | None:
        while True:
            if self.unsupported:
                return None
            conn = self._pick()
            if conn is not None:
                return conn.open(fields)
            if self._dial is None:
                self._dial = asyncio.get_running_loop().create_task(self._connect())
                self._dial.add_done_callback(_retrieve)
            # Every waiter shares the one dial (and its error): no burst of handshakes.
            await asyncio.shield(self._dial)

    def _pick(self) -> H2Connection | None:
        generation = self._current_generation()
        found = None
        for conn in self._conns:
            if conn.generation != generation and not conn.going_away:
                conn.going_away = True  # made with an old client certificate
                if not conn.streams:
                    conn.close()
            if found is None and conn.available:
                found = conn
        if len(self._conns) > 4 and any(conn.closed for conn in self._conns):
            self._conns = [conn for conn in self._conns if not conn.closed]
        return found

    def _current_generation(self) -> int:
        tls = self._tls
        if tls is None:
            return 0
        now = time.monotonic()
        if now >= tls.check_at:
            tls.check(now)
        return tls.generation

    async def _connect(self) -> None:
        from kproxy.upstream.h2_connection import H2Connection

        try:
            _, conn, generation = await self._dialer.connect(lambda: H2Connection(self._changed), alpn=ALPN_H2)
            self.dials += 1
            if conn.negotiated != "h2":
                conn.abort()
                self.unsupported = True
                return
            try:
                async with asyncio.timeout(self._dialer.connect_timeout):
                    await conn.settled()
            except TimeoutError:
                conn.abort()
                raise UpstreamTimeout("the API server sent no HTTP/2 SETTINGS after the TLS handshake") from None
            conn.generation = generation
            if self._closed:
                conn.close()
                return
            self._conns = [c for c in self._conns if not c.closed]
            self._conns.append(conn)
        finally:
            self._dial = None

    def _changed(self, conn: H2Connection) -> None:
        if conn.closed:
            self._conns = [c for c in self._conns if not c.closed]

    def retire(self) -> None:
        """A reload replaced this lane: no new streams; each connection closes when its
        last stream ends, so watches in flight run on to their end."""
        self._closed = True
        if self._dial is not None:
            self._dial.cancel()
        for conn in self._conns:
            conn.going_away = True
            if not conn.streams:
                conn.close()

    def close(self) -> None:
        self._closed = True
        if self._dial is not None:
            self._dial.cancel()
        for conn in self._conns:
            conn.close()
        self._conns.clear()


def _retrieve(task: asyncio.Task[None]) -> None:
    # The waiters see the dial's error; this keeps asyncio from logging it once more
    # when they have all gone.
    if not task.cancelled():
        task.exception()
