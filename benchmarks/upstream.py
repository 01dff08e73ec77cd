"""The small upstream program behind nginx: watch streams and an exec-style echo.

Run as ``python -m benchmarks.upstream`` (port 0 by default); prints
``listening on PORT`` once ready. Plain HTTP/1.1 on raw asyncio streams, one request
per connection:

* ``GET /api/v1/watch/...?bench=TAG``: a chunked watch stream. One ADDED event goes
  out at once (so a client knows the stream is through), then nothing until an event
  is emitted. TAG groups streams, so one target's leftovers never receive (and lose)
  another target's events.
* ``GET /bench/emit?n=K&bench=TAG``: write one MODIFIED event to each of K open watches
  of TAG (round-robin; ``n=0`` means all). Every event carries the CLOCK_MONOTONIC time
  at which it was written (``bench/sent-ns``), so a client on the same machine can tell
  how long it took to arrive. The harness calls this directly, not through nginx.
* ``GET /bench/watches?bench=TAG``: how many of TAG's streams are open (to see that a
  proxy closes its upstream streams when its clients go away).
* ``.../exec`` with ``Connection: Upgrade``: answers 101 and echoes every byte back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from urllib.parse import parse_qs, urlsplit

__all__ = ["EMIT_PATH", "WATCH_PATH", "WATCHES_PATH", "main"]

WATCH_PATH = "/api/v1/watch/namespaces/bench/pods"
EMIT_PATH = "/bench/emit"
WATCHES_PATH = "/bench/watches"

_WATCH_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


class Upstream:
    def __init__(self) -> None:
        self.watches: dict[str, list[asyncio.StreamWriter]] = {}
        self._next = 0
        self._rv = 3_000_000

    def _event(self, kind: bytes) -> bytes:
        self._rv += 1
        body = (
            b'{"type":"%s","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"watched",'
            b'"namespace":"bench","resourceVersion":"%d","annotations":{"bench/sent-ns":"%d"}}}}\n'
            % (kind, self._rv, time.monotonic_ns())
        )
        return b"%x\r\n%s\r\n" % (len(body), body)

    def emit(self, count: int, tag: str) -> int:
        open_watches = self.watches.get(tag, [])
        if not open_watches:
            return 0
        if count <= 0 or count >= len(open_watches):
            chosen = list(open_watches)
        else:
            chosen = [open_watches[(self._next + i) % len(open_watches)] for i in range(count)]
            self._next = (self._next + count) % len(open_watches)
        for writer in chosen:
            # The timestamp is taken per write, so a broadcast's own loop is not counted.
            writer.write(self._event(b"MODIFIED"))
        return len(chosen)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        url = urlsplit(target)
        query = parse_qs(url.query)
        tag = query.get("bench", [""])[0]
        try:
            if url.path.startswith("/api/v1/watch/") and method == "GET":
                await self._watch(reader, writer, tag)
            elif url.path.endswith("/exec") and "upgrade" in headers.get("connection", "").lower():
                await self._echo(reader, writer, headers.get("upgrade", "SPDY/3.1"))
            elif url.path == EMIT_PATH:
                count = int(query.get("n", ["1"])[0])
                self._reply(writer, 200, {"sent": self.emit(count, tag)})
            elif url.path == WATCHES_PATH:
                self._reply(writer, 200, {"open": len(self.watches.get(tag, []))})
            else:
                self._reply(writer, 404, {"kind": "Status", "status": "Failure", "code": 404})
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    def _reply(writer: asyncio.StreamWriter, status: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, len(body), body)
        )

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str) -> None:
        writer.write(_WATCH_HEAD + self._event(b"ADDED"))
        group = self.watches.setdefault(tag, [])
        group.append(writer)
        try:
            while await reader.read(65536):  # a watch ends when the other side closes
                pass
        finally:
            group.remove(writer)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str) -> None:
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n"
            b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n" % protocol.encode("latin-1")
        )
        while data := await reader.read(262144):
            writer.write(data)
            await writer.drain()


async def _serve(port: int) -> None:
    upstream = Upstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=4096)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
