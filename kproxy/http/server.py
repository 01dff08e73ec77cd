"""kproxy's client-facing HTTP/1.1 server: the protocol factory and the live connections.

In: a handler (``Request`` → answer, awaited on each connection's task), optionally a
*fast path* (``Request`` → bool, called synchronously for complete requests; True when it
took the request and will hand back through the connection), and the read-header and
idle deadlines (:mod:`kproxy.http.deadlines`). Out: a factory for ``loop.create_server``
and a graceful :meth:`HTTPServer.shutdown`.

Why not aiohttp's server: per request it builds a request object with URL and header
multidicts, a response object, a header multidict again and a writer; together that
cost more CPU than all of kproxy's own work (benchmarks/README.md). Here a request is
its raw head, headers stay bytes until someone asks for them as strings, and a relayed
response goes out as the upstream's header bytes, filtered, in one write with its body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kproxy.http.connection import ClientConnection, FastPath
from kproxy.http.deadlines import period
from kproxy.http.messages import Request
from kproxy.http.responses import Answer

__all__ = ["FastPath", "Handler", "HTTPServer"]

Handler = Callable[[Request], Awaitable[Answer]]


class HTTPServer:
    """The protocol factory for ``loop.create_server`` plus the set of live connections."""

    def __init__(
        self,
        handler: Handler,
        loop: asyncio.AbstractEventLoop,
        fast: FastPath | None = None,
        *,
        read_header_timeout: float = 0.0,
        idle_timeout: float = 0.0,
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.loop = loop
        # Seconds; 0 turns a deadline off (kproxy.http.deadlines).
        self.read_header_timeout = read_header_timeout
        self.idle_timeout = idle_timeout
        self.deadline_period = period(read_header_timeout, idle_timeout)
        self.connections: set[ClientConnection] = set()
        self._all_gone: asyncio.Event | None = None

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def shutdown(self, timeout: float) -> None:
        """Let requests in flight finish within ``timeout``, then cut what is left."""
        self._all_gone = asyncio.Event()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            try:
                await asyncio.wait_for(self._all_gone.wait(), timeout)
            except TimeoutError:
                pass
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
