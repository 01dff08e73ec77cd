"""``python -m benchmarks.memory``: what slow readers cost each proxy in memory, and
whether it comes back once they leave.

The same API-server stand-in as ``python -m benchmarks`` (nginx with TLS, client
certificates and HTTP/2, see :mod:`benchmarks.environment`) serves one large answer
(8 MiB by default). For each proxy in turn (``kubectl proxy``, then kproxy; each started
afresh): one warm-up request reads the answer whole, then RSS is read (*start*); then
``--clients`` clients (100) each ask for the answer and read it slowly
(``--read-kib`` every ``--read-interval`` seconds, with a small socket receive buffer so
that the kernel cannot absorb the answer on their behalf) for ``--hold-seconds``, while
RSS is sampled (*peak*: the highest sample); then every client leaves at once, and RSS is
sampled for ``--settle-seconds`` (*after*: the last sample; long enough for kproxy's
periodic ``malloc_trim``, every 10 s).

RSS is the proxy's process tree (``VmRSS`` from ``/proc``), in MiB. The bar kproxy is
held to (issue 12): peak at most 40 MiB over start, after within 15 MiB of start, for
100 clients of 8 MiB answers. Wall-clock-free but not noise-free: take the figures on a
quiet machine. ``--clients 4 --answer-mib 1 --hold-seconds 1 --settle-seconds 1`` is a
smoke run of a few seconds. Prints a Markdown table; ``--json PATH`` also writes the
figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import DEFAULT
from .deps import MissingTool, ensure_tools
from .environment import Environment, environment
from .procs import rss_mb
from .targets import start_proxy

__all__ = ["Figures", "main"]

ANSWER_PATH = "/api/v1/namespaces/memory/configmaps/answer"
BOUND_PEAK_MIB = 40.0  # over start, for 100 clients of 8 MiB answers
BOUND_AFTER_MIB = 15.0
_SAMPLE = 0.25  # seconds between RSS samples
_RCVBUF = 64 * 1024


@dataclass(frozen=True)
class Settings:
    clients: int
    answer_mib: int
    read_kib: int
    read_interval: float
    hold_seconds: float
    settle_seconds: float


@dataclass(frozen=True)
class Figures:
    proxy: str
    start_mib: float
    peak_mib: float
    after_mib: float
    clients_answered: int  # clients that got the answer's head
    read_mib: float  # what all clients read, together

    @property
    def growth(self) -> float:
        return self.peak_mib - self.start_mib

    @property
    def kept(self) -> float:
        return self.after_mib - self.start_mib


def write_answer(root: Path, size: int) -> None:
    """A JSON object of ``size`` bytes, served by nginx as a file (sendfile)."""
    head = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"answer"},"data":{"blob":"'
    tail = b'"}}'
    path = root / ANSWER_PATH.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + b"x" * (size - len(head) - len(tail)) + tail)
    for p in (path, *path.parents):
        if p == root.parent:
            break
        p.chmod(0o755 if p.is_dir() else 0o644)


class _SlowReader:
    """One client: asks for the answer, then reads ``read`` bytes per ``interval``."""

    def __init__(self, port: int, read: int, interval: float) -> None:
        self.port = port
        self.read = read
        self.interval = interval
        self.answered = False
        self.received = 0
        self._writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connecting: a fixed buffer (no autotuning) holds little of the answer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=self.read)
        self._writer = writer
        writer.write(f"GET {ANSWER_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        self.answered = True
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        size = int(length[1]) if length else -1  # (-1: until the connection ends)
        while self.received != size and (data := await reader.read(self.read)):
            self.received += len(data)
            if self.interval:
                await asyncio.sleep(self.interval)

    def leave(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()


async def _sample_for(pid: int, seconds: float) -> list[float]:
    samples = [rss_mb(pid)]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(min(_SAMPLE, max(0.0, end - time.monotonic())))
        samples.append(rss_mb(pid))
    return samples


async def measure(env: Environment, name: str, kubectl: str, s: Settings) -> Figures:
    """One proxy, started afresh: start, peak and after RSS around the slow clients."""
    target = await start_proxy(env.procs, name, kubectl, env.kubeconfig, env.home, env.proxy_cpus, env.kproxy_dir)
    assert target.child is not None and target.pid is not None
    try:
        warm = _SlowReader(target.port, 1 << 20, 0.0)
        warm_task = asyncio.create_task(warm.run())
        await asyncio.wait_for(_whole(warm, warm_task, s.answer_mib << 20), 60)
        await asyncio.sleep(1.0)
        start = rss_mb(target.pid)
        readers = [_SlowReader(target.port, s.read_kib * 1024, s.read_interval) for _ in range(s.clients)]
        tasks = [asyncio.create_task(r.run()) for r in readers]
        try:
            peak = max(await _sample_for(target.pid, s.hold_seconds))
        finally:
            for reader in readers:
                reader.leave()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        after = (await _sample_for(target.pid, s.settle_seconds))[-1]
        return Figures(
            name,
            round(start, 1),
            round(max(peak, start), 1),
            round(after, 1),
            sum(r.answered for r in readers),
            round(sum(r.received for r in readers) / (1 << 20), 1),
        )
    finally:
        await env.procs.stop(target.child)


async def _whole(reader: _SlowReader, task: asyncio.Task[None], size: int) -> None:
    try:
        await task
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise RuntimeError(f"the warm-up request failed: {exc}") from exc
    if reader.received < size:
        raise RuntimeError(f"the warm-up request read {reader.received} bytes of {size}")
    reader.leave()


def to_markdown(figures: Sequence[Figures], s: Settings) -> str:
    lines = [
        f"Slow readers: {s.clients} clients, {s.answer_mib} MiB answer each, reading "
        f"{s.read_kib} KiB every {s.read_interval:g} s for {s.hold_seconds:g} s, then leaving; "
        f"RSS {s.settle_seconds:g} s later.",
        "",
        "| proxy | RSS start | RSS peak | RSS after | peak − start | after − start | answered | read |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.proxy} | {f.start_mib:.1f} MiB | {f.peak_mib:.1f} MiB | {f.after_mib:.1f} MiB "
            f"| {f.growth:+.1f} MiB | {f.kept:+.1f} MiB | {f.clients_answered}/{s.clients} | {f.read_mib:.1f} MiB |"
        )
    lines += [
        "",
        f"kproxy's bar (100 clients of 8 MiB answers): peak − start ≤ {BOUND_PEAK_MIB:g} MiB, "
        f"after − start ≤ {BOUND_AFTER_MIB:g} MiB.",
    ]
    return "\n".join(lines)


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--clients", type=_positive(int), default=100, help="slow clients at once (default 100)")
    p.add_argument("--answer-mib", type=_positive(int), default=8, help="size of the answer in MiB (default 8)")
    p.add_argument("--read-kib", type=_positive(int), default=16, help="what a client reads at a time (default 16)")
    p.add_argument("--read-interval", type=_positive(float), default=0.1, help="seconds between reads (default 0.1)")
    p.add_argument("--hold-seconds", type=_positive(float), default=15.0, help="slow reading before leaving (15)")
    p.add_argument("--settle-seconds", type=_positive(float), default=15.0, help="wait after they leave (15)")
    p.add_argument("--targets", default="kubectl,kproxy", help="comma-separated subset of kubectl,kproxy")
    p.add_argument("--kproxy-ref", help="measure kproxy as committed at this git ref, not the working tree")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    return p


async def _run(args: argparse.Namespace, s: Settings, targets: list[str], kubectl: str) -> list[Figures]:
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    config = DEFAULT.with_overrides(list_pods=10, kproxy_ref=args.kproxy_ref, pin=False if args.no_pin else None)
    async with environment(config) as env:
        write_answer(env.payloads.root, s.answer_mib << 20)
        return [await measure(env, name, kubectl, s) for name in targets]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - {"kubectl", "kproxy"})
    if unknown or not targets:
        print(f"error: --targets: {','.join(unknown) or 'empty'}: use kubectl, kproxy or both", file=sys.stderr)
        return 1
    s = Settings(
        args.clients, args.answer_mib, args.read_kib, args.read_interval, args.hold_seconds, args.settle_seconds
    )
    kubectl = shutil.which("kubectl")
    if kubectl is None and "kubectl" in targets:
        print("warning: kubectl not on PATH: measuring kproxy alone", file=sys.stderr)
        targets.remove("kubectl")
        if not targets:
            print("error: --targets: kubectl is not on PATH and nothing else was asked for", file=sys.stderr)
            return 1
    try:
        ensure_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .cli import _runner

    try:
        with _runner() as runner:
            figures = runner.run(_run(args, s, targets, kubectl or ""))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        return 130
    print(to_markdown(figures, s))
    if args.json is not None:
        record = {"settings": asdict(s), "figures": [asdict(f) for f in figures]}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
