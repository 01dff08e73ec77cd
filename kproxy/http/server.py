"""kproxy's client-facing HTTP/1.1 server: the protocol factory and the live connections.

In: a handler (``Request`` → answer, awaited on each connection's task), optionally a
*fast path* (``Request`` → bool, called synchronously for complete requests; True when it
took the request and will hand back through the connection), and the read-header and
idle deadlines (:mod:`kproxy.http.deadlines`), and an *admission* (peer → None, or the
answer to give without reading a byte: a client refused at the door). Out: a factory
for ``loop.create_server`` and a graceful :meth:`HTTPServer.shutdown`.

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
from kproxy.http.framing import closing_answer
from kproxy.http.messages import Request
from kproxy.http.responses import Answer, Clock, Response

__all__ = ["Admission", "FastPath", "Handler", "HTTPServer", "door_answer"]

Handler = Callable[[Request], Awaitable[Answer]]
# A client's peer address (as the transport gives it) → None to serve it, or the bytes
# to answer before reading anything from it (then the connection ends).
Admission = Callable[[object], bytes | None]
_CLOCK = Clock()


def door_answer(response: Response) -> bytes:
    """The bytes of ``response`` as an :data:`Admission` answers with them."""
    return closing_answer(response, _CLOCK)


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
        admit: Admission | None = None,
    ) -> None:
        self.handler = handler
        self.fast = fast
        self.loop = loop
        # Asked at accept, before a byte is read (ClientConnection.connection_made). A
        # listener that must decide before a TLS handshake asks it itself, first.
        self.admit = admit
        # Seconds; 0 turns a deadline off (kproxy.http.deadlines).
        self.read_header_timeout = read_header_timeout
        self.idle_timeout = idle_timeout
        self.deadline_period = period(read_header_timeout, idle_timeout)
        self.connections: set[ClientConnection] = set()
        self.ended = 0  # connections that have ended, ever
        self._all_gone: asyncio.Event | None = None

    def __call__(self) -> ClientConnection:
        return ClientConnection(self)

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.ended += 1
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def shutdown(self, timeout: float, cutting: Callable[[], object] | None = None) -> None:
        """Let requests in flight finish within ``timeout``, then cut what is left
        (``cutting`` is told first, when there is something to cut)."""
        self._all_gone = asyncio.Event()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            try:
                await asyncio.wait_for(self._all_gone.wait(), timeout)
            except TimeoutError:
                pass
        if self.connections and cutting is not None:
            cutting()
        tasks = [task for conn in self.connections if (task := conn.task) is not None and not task.done()]
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)
        if tasks:
            # The handlers cut short end now (each is told it was cancelled): let them.
            await asyncio.wait(tasks, timeout=1.0)
