"""An API server stand-in that records exactly what reaches it, for the tests of what
kproxy must never forward: a request the client did not complete.

Each connection's bytes are parsed by h11 (an HTTP/1.1 parser independent of kproxy's
llhttp, as strict as a real server's), and only requests h11 sees *complete* — head
and whole body, well framed — are recorded as :class:`Seen`, then answered
``200`` with a small JSON body. A connection that ends in the middle of a request
records nothing for it: that is what the API server would act on (nothing). The raw
bytes of every connection are kept too, for the failure messages.

``script`` (optional) replaces the answer: given the request, it returns the raw bytes
to send (a cut answer, a malformed head ...), or None to close without answering.
``tls`` (optional): a server context, to speak HTTPS; a connection is then recorded once
its TLS handshake is done.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

__all__ = ["RecordingUpstream", "Seen"]


@dataclass(frozen=True)
class Seen:
    """One request the upstream received complete."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None


Script = Callable[[Seen], bytes | None]


@dataclass
class RecordingUpstream:
    script: Script | None = None
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: list[bytearray] = field(default_factory=list)
    broken: int = 0  # connections that ended in the middle of a request
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _mid: set[asyncio.Task[None]] = field(default_factory=set)  # connections in the middle of a request

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> RecordingUpstream:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", port, ssl=self.tls)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def hang_up(self) -> None:
        """End every connection made so far (the listener stays open)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> RecordingUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def settled(self, connections: int | None = None, timeout: float = 15.0) -> None:
        """Wait until no connection is in the middle of a request (each one ended, or
        waits idle for its next request), and, if given, until at least ``connections``
        were made."""
        async with asyncio.timeout(timeout):
            while self._mid or (connections is not None and len(self.connections) < connections):
                self._changed.clear()
                await self._changed.wait()

    async def received(self, part: bytes, timeout: float = 15.0) -> None:
        """Wait until ``part`` has reached the upstream on some connection."""
        async with asyncio.timeout(timeout):
            while not any(part in raw for raw in self.connections):
                self._changed.clear()
                await self._changed.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._changed.set()
        raw = bytearray()
        self.connections.append(raw)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024 * 1024)
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    raw += data
                    self._changed.set()
                    if data:
                        self._mid.add(task)
                    if not data and conn.their_state is not h11.IDLE:
                        self.broken += 1  # the stream ended in the middle of a request
                        return
                    conn.receive_data(data)  # b"": the end of the stream
                elif isinstance(event, h11.Request):
                    request, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    seen = Seen(
                        request.method.decode("latin-1"),
                        request.target.decode("latin-1"),
                        tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers),
                        bytes(body),
                    )
                    self.seen.append(seen)
                    self._mid.discard(task)
                    self._changed.set()
                    if self.script is not None:
                        answer = self.script(seen)
                        if answer:
                            writer.write(answer)
                            await writer.drain()
                        return  # a scripted answer ends its connection
                    reply = json.dumps({"method": seen.method, "target": seen.target, "length": len(seen.body)})
                    data = conn.send(
                        h11.Response(
                            status_code=200,
                            headers=[("Content-Type", "application/json"), ("Content-Length", str(len(reply)))],
                        )
                    )
                    data += conn.send(h11.Data(data=reply.encode())) + conn.send(h11.EndOfMessage())
                    writer.write(data)
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError:
            self.broken += 1
        except (ConnectionError, asyncio.CancelledError):
            if conn.their_state not in (h11.IDLE, h11.DONE):
                self.broken += 1
        finally:
            writer.close()
            self._tasks.discard(task)
            self._mid.discard(task)
            self._changed.set()
