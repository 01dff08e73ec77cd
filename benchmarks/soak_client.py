"""The soak's load on one proxy: ``python -m benchmarks.soak_client --port P ...``.

One process per proxy, so each proxy's load has its own event loop and the harness can
tell whether the client kept up. For ``--seconds`` it keeps ``--watches`` watch streams
open through the proxy and replaces ``--churn`` of them a second (a random open one is
aborted, a new one opened: a dashboard switching views), asks the upstream program
directly for ``--events-per-second`` events on them, sends ``--gets-per-second`` small
GETs (one connection each, ``Connection: close``) and runs ``--slow-clients`` readers of
the large list that read ``--slow-kib-per-second`` each, half of them to the end, half
leaving at a random point. Every ``--interval`` seconds it appends one JSON line of
counters to ``--status-file``; at the end it closes everything, writes a last line with
``"phase": "done"`` and exits 0.

Everything is bounded: opens in flight (``--open-concurrency``), GETs in flight (64),
each read and connect (30 s), and the run itself. A watch that ends without being asked
to is counted as lost and replaced, so the count stays at ``--watches``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from .clients import http_get
from .payloads import LIST_PATH, POD_PATH
from .upstream import EMIT_PATH, WATCH_PATH

__all__ = ["Counters", "main"]

_IO_TIMEOUT = 30.0
_MAX_GETS_IN_FLIGHT = 64
_TICK = 0.1  # seconds between churn and GET steps, and the loop-lag probe's period


@dataclass
class Counters:
    """What the client did; cumulative except ``watches_open`` and the lag figures."""

    watches_open: int = 0
    watches_opened: int = 0  # streams that got their first event
    watch_open_failures: int = 0
    watches_closed: int = 0  # aborted by the client (churn, and at the end)
    watches_lost: int = 0  # ended without the client asking
    replaced: int = 0  # churn: one closed and its replacement open
    churn_behind: int = 0  # replacements not started because opens were already backed up
    events_sent: int = 0  # as the upstream program reported
    events_received: int = 0
    gets: int = 0
    get_errors: int = 0
    gets_skipped: int = 0  # the GET trickle's slot came with 64 GETs already in flight
    slow_started: int = 0
    slow_completed: int = 0  # read to the end, every byte
    slow_left: int = 0  # left on purpose part-way
    slow_errors: int = 0
    slow_bytes: int = 0
    lag_max_ms: float = 0.0  # since the last status line
    lag_mean_ms: float = 0.0
    last_error: str = ""


class _Watch(asyncio.Protocol):
    """One watch stream: the answer must be 200; then it counts MODIFIED events.

    Counting event names in the raw bytes avoids parsing the chunked framing; a name
    split between two reads is missed, which undercounts received events slightly.
    """

    def __init__(self, load: _Load, request: bytes) -> None:
        self._load = load
        self._request = request
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved here too: an open given up at the end of the run never awaits it.
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._head = bytearray()
        self._head_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                self._fail(f"watch refused: {bytes(self._head[:120])!r}")
                return
            self._head_done = True
            data = bytes(self._head[end + 4 :])
            self._head.clear()
        if not self.ready.done() and b'"ADDED"' in data:
            self.ready.set_result(None)
        self._load.counters.events_received += data.count(b'"MODIFIED"')

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"watch closed before its first event: {exc}"))
        self._load.ended(self)


class _Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counters = Counters()
        self.rng = random.Random(args.seed)
        self.open: list[_Watch] = []  # streams that got their first event, not closed by us
        self.pending = 0  # opens in flight
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self._gate = asyncio.Semaphore(args.open_concurrency)
        self._gets_in_flight = 0
        self._lags: list[float] = []
        path = f"{WATCH_PATH}?resourceVersion=0&watch=true&bench={args.tag}"
        self._watch_request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nAccept: application/json\r\n"
            "User-Agent: kproxy-soak\r\n\r\n"
        ).encode()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def error(self, what: str, exc: BaseException) -> None:
        self.counters.last_error = f"{what}: {type(exc).__name__}: {exc}"[:300]

    # -- watches -------------------------------------------------------------------

    def ended(self, watch: _Watch) -> None:
        if watch in self.open:  # not closed by us: the proxy or the upstream ended it
            self.open.remove(watch)
            self.counters.watches_lost += 1

    def start_open(self, replacing: bool) -> None:
        self.pending += 1  # now, not when the task first runs: the top-up counts it at once
        self.spawn(self.open_watch(replacing))

    async def open_watch(self, replacing: bool) -> None:
        try:
            async with self._gate:
                if self.stopping:
                    return
                loop = asyncio.get_running_loop()
                _, watch = await asyncio.wait_for(
                    loop.create_connection(lambda: _Watch(self, self._watch_request), "127.0.0.1", self.args.port),
                    _IO_TIMEOUT,
                )
                try:
                    await asyncio.wait_for(asyncio.shield(watch.ready), _IO_TIMEOUT)
                except BaseException:
                    if watch.transport is not None:
                        watch.transport.abort()
                    raise
            if self.stopping:
                assert watch.transport is not None
                watch.transport.abort()
                return
            self.open.append(watch)
            self.counters.watches_opened += 1
            self.counters.replaced += replacing
        except (OSError, TimeoutError) as exc:
            self.counters.watch_open_failures += 1
            self.error("watch", exc)
        finally:
            self.pending -= 1

    def close_random(self) -> bool:
        if not self.open:
            return False
        watch = self.open.pop(self.rng.randrange(len(self.open)))
        assert watch.transport is not None
        watch.transport.abort()
        self.counters.watches_closed += 1
        return True

    async def churn(self) -> None:
        """Keep ``--watches`` open and replace ``--churn`` a second, paced by the clock."""
        loop = asyncio.get_running_loop()
        owed, last = 0.0, loop.time()
        while not self.stopping:
            # Top up: the start, and any stream lost or failed to open.
            for _ in range(self.args.watches - len(self.open) - self.pending):
                self.start_open(replacing=False)
            await asyncio.sleep(_TICK)
            now = loop.time()
            owed += self.args.churn * (now - last)
            last = now
            due = int(owed)
            owed -= due
            for _ in range(due):
                if self.pending >= self.args.open_concurrency * 4:
                    self.counters.churn_behind += 1
                elif self.close_random():
                    self.start_open(replacing=True)

    # -- the other traffic -------------------------------------------------------------

    async def events(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            if self.args.events_per_second <= 0 or not self.open:
                continue
            path = f"{EMIT_PATH}?n={self.args.events_per_second}&bench={self.args.tag}"
            try:
                reply = await http_get(self.args.upstream_port, path, timeout=10)
                self.counters.events_sent += int(json.loads(reply.body)["sent"])
            except (OSError, TimeoutError, ValueError, KeyError) as exc:
                self.error("emit", exc)

    async def one_get(self) -> None:
        self._gets_in_flight += 1
        try:
            reply = await http_get(self.args.port, POD_PATH, timeout=_IO_TIMEOUT)
            self.counters.gets += 1
            if reply.status != 200:
                self.counters.get_errors += 1
                self.counters.last_error = f"GET: {reply.status}"
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            self.counters.gets += 1
            self.counters.get_errors += 1
            self.error("GET", exc)
        finally:
            self._gets_in_flight -= 1

    async def gets(self) -> None:
        loop = asyncio.get_running_loop()
        owed, last = 0.0, loop.time()
        while not self.stopping:
            await asyncio.sleep(_TICK)
            now = loop.time()
            owed += self.args.gets_per_second * (now - last)
            last = now
            due = int(owed)
            owed -= due
            for _ in range(due):
                if self._gets_in_flight >= _MAX_GETS_IN_FLIGHT:
                    self.counters.gets_skipped += 1
                else:
                    self.spawn(self.one_get())

    async def slow_reader(self) -> None:
        while not self.stopping:
            try:
                await self.slow_read_once()
            except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
                self.counters.slow_errors += 1
                self.error("slow reader", exc)
            await asyncio.sleep(0.2)

    async def slow_read_once(self) -> None:
        """One large answer read at the set pace; half the time the reader leaves early."""
        args = self.args
        # A full answer read to the end, or this share of it before leaving.
        leave_at = None if self.rng.random() < 0.5 else self.rng.uniform(0.05, 0.95) * args.list_bytes
        step = max(1024, int(args.slow_kib_per_second * 1024 * _TICK))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", args.port, limit=step), _IO_TIMEOUT
        )
        self.counters.slow_started += 1
        try:
            writer.write(
                f"GET {LIST_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nUser-Agent: kproxy-soak\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IO_TIMEOUT)
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"list answered {head[:80]!r}")
            got = 0
            while not self.stopping:
                data = await asyncio.wait_for(reader.read(step), _IO_TIMEOUT)
                if not data:
                    break
                got += len(data)
                self.counters.slow_bytes += len(data)
                if leave_at is not None and got >= leave_at:
                    self.counters.slow_left += 1
                    return
                await asyncio.sleep(_TICK)
            if self.stopping:
                return
            # A chunked answer (kubectl's, decompressed on the fly) carries framing too.
            if got < args.list_bytes:
                raise ConnectionError(f"list cut at {got} of {args.list_bytes} bytes")
            self.counters.slow_completed += 1
        finally:
            writer.transport.abort()

    async def lag_probe(self) -> None:
        """How late the loop wakes up: a client that falls behind measures itself, not the proxy."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            before = loop.time()
            await asyncio.sleep(_TICK)
            self._lags.append(max(0.0, (loop.time() - before - _TICK) * 1e3))

    def status(self, phase: str, elapsed: float) -> dict[str, Any]:
        lags, self._lags = self._lags, []
        self.counters.watches_open = len(self.open)
        self.counters.lag_max_ms = round(max(lags, default=0.0), 1)
        self.counters.lag_mean_ms = round(sum(lags) / len(lags), 2) if lags else 0.0
        return {"phase": phase, "elapsed_s": round(elapsed, 2), "pending_opens": self.pending, **asdict(self.counters)}


async def _run(args: argparse.Namespace) -> None:
    load = _Load(args)
    status_file = Path(args.status_file)
    loop = asyncio.get_running_loop()
    start = loop.time()

    def report(phase: str) -> None:
        with status_file.open("a") as out:  # noqa: ASYNC230 - one short line per interval
            out.write(json.dumps(load.status(phase, loop.time() - start)) + "\n")

    print("soak client started", flush=True)
    workers = [load.churn(), load.events(), load.gets(), load.lag_probe()]
    workers += [load.slow_reader() for _ in range(args.slow_clients)]
    for worker in workers:
        load.spawn(worker)
    deadline = start + args.seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(args.interval, left))
        report("load")
    load.stopping = True
    while load.open:
        load.close_random()
    tasks = list(load.tasks)
    for task in tasks:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)
    await asyncio.sleep(0.2)  # let the aborted transports report connection_lost
    report("done")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak_client", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True, help="the proxy's port on 127.0.0.1")
    p.add_argument("--upstream-port", type=int, required=True, help="the upstream program's port (events)")
    p.add_argument("--tag", required=True, help="groups this client's watches in the upstream program")
    p.add_argument("--status-file", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--watches", type=int, default=1000)
    p.add_argument("--churn", type=float, default=20.0, help="watches replaced per second")
    p.add_argument("--events-per-second", type=int, default=50)
    p.add_argument("--gets-per-second", type=float, default=20.0)
    p.add_argument("--slow-clients", type=int, default=8)
    p.add_argument("--slow-kib-per-second", type=float, default=512.0)
    p.add_argument("--list-bytes", type=int, required=True, help="size of the list, to tell a cut answer")
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--open-concurrency", type=int, default=64)
    p.add_argument("--seed", type=int, default=12)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Each watch, GET and slow reader is a socket; the harness raised the limit already,
    # this covers a client started by hand.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
