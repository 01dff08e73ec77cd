"""One measurement of one scenario against one target → a flat dict of metrics.

CPU figures are the proxy's own (its process tree, /proc/PID/stat utime+stime), taken
around the measurement; "direct" has no proxy and so no CPU or memory figures.
Sizes are MB = 10^6 bytes.

"direct" is nginx's plain-HTTP port, except for the 10 MB list's second baseline,
:func:`curl_list_tls`: the TLS port the proxies use, with their client certificate.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .clients import WatchFleet, curl_repeat, echo_latency, echo_throughput, http_get
from .config import Config
from .payloads import LIST_PATH, POD_PATH, Payloads
from .pki import Pki
from .procs import cpu_seconds, rss_mb, tcp_connections
from .targets import Target
from .upstream import EMIT_PATH, WATCH_PATH, WATCHES_PATH
from .wrk import run_wrk

__all__ = [
    "EXEC_PATH",
    "Bench",
    "Metrics",
    "curl_list_tls",
    "echo",
    "percentile",
    "verify",
    "watches",
    "wrk_get",
    "wrk_list",
]

Metrics = dict[str, float | int | str | None]
EXEC_PATH = "/api/v1/namespaces/bench/pods/echo/exec?command=cat&stdin=true&stdout=true"


@dataclass(frozen=True)
class Bench:
    config: Config
    payloads: Payloads
    upstream_port: int
    tls_port: int  # nginx's TLS listener, the one the proxies talk to
    pki: Pki


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return ordered[int(rank) - 1]


def _cpu(target: Target) -> float | None:
    return cpu_seconds(target.pid) if target.pid is not None else None


def _url(target: Target, path: str) -> str:
    return f"http://127.0.0.1:{target.port}{path}"


async def wrk_get(target: Target, connections: int, seconds: int) -> Metrics:
    cpu0 = _cpu(target)
    result = await run_wrk(_url(target, POD_PATH), connections, seconds, ["Accept: application/json"])
    metrics: Metrics = dict(result.as_dict())
    if cpu0 is not None:
        used = cpu_seconds(target.pid or 0) - cpu0
        metrics["cpu_us_per_req"] = round(1e6 * used / max(result.requests, 1), 1)
        metrics["cpu_cores"] = round(used / result.seconds, 3)
    return metrics


async def wrk_list(target: Target, seconds: int, gzipped: bool) -> Metrics:
    headers = ["Accept: application/json"] + (["Accept-Encoding: gzip"] if gzipped else [])
    cpu0 = _cpu(target)
    result = await run_wrk(_url(target, LIST_PATH), 1, seconds, headers)
    metrics: Metrics = {
        "lists_s": round(result.rps, 2),
        # bytes as the client received them: 10 MB JSON, or the gzip file when asked for
        "mb_s": round(result.bytes_read / result.seconds / 1e6, 1),
        "p50_ms": round(result.p50_ms, 2),
        "requests": result.requests,
        "errors": result.errors,
    }
    if cpu0 is not None:
        used = cpu_seconds(target.pid or 0) - cpu0
        metrics["cpu_ms_per_list"] = round(1e3 * used / max(result.requests, 1), 2)
    return metrics


async def curl_list_tls(bench: Bench, seconds: int) -> Metrics:
    """The 10 MB list straight from nginx's TLS port, client certificate and all.

    The baseline a TLS-terminating proxy is held to: the same upstream bytes over the
    same TLS, read by a client with nothing in between. The plain-HTTP direct number
    (nginx's sendfile, no encryption at all) is out of any such proxy's reach. HTTP/1.1,
    as kproxy speaks it upstream; no Accept-Encoding, as in the plain list scenario.
    """
    result = await curl_repeat(
        f"https://127.0.0.1:{bench.tls_port}{LIST_PATH}",
        seconds,
        bench.pki,
        bench.payloads.list_bytes,
        ["Accept: application/json"],
    )
    return {
        "lists_s": round(result.transfers / result.seconds, 2),
        "mb_s": round(result.bytes_read / result.seconds / 1e6, 1),
        "p50_ms": _round(percentile(result.times_ms, 50), 2),
        "requests": result.transfers,
        "seconds": round(result.seconds, 3),
        "errors": result.errors,
        "connections": result.connections,
    }


async def echo(target: Target, seconds: float) -> Metrics:
    cpu0 = _cpu(target)
    rtts = await echo_latency(target.port, EXEC_PATH, seconds)
    rate = await echo_throughput(target.port, EXEC_PATH, seconds)
    metrics: Metrics = {
        "rtt_p50_ms": _round(percentile(rtts, 50), 3),
        "rtt_p99_ms": _round(percentile(rtts, 99), 3),
        "round_trips": len(rtts),
        "mb_s": round(rate / 1e6, 1),
    }
    if cpu0 is not None:
        metrics["cpu_s"] = round(cpu_seconds(target.pid or 0) - cpu0, 2)
    return metrics


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def _upstream(bench: Bench, path: str) -> dict[str, int]:
    reply = await http_get(bench.upstream_port, path, timeout=10)
    data: dict[str, int] = json.loads(reply.body)
    return data


async def watches(bench: Bench, target: Target, tag: str, count: int | None = None) -> Metrics:
    """Open N watches, idle, time single events and broadcasts, close, see them released."""
    cfg = bench.config
    fleet = WatchFleet(target.port, f"{WATCH_PATH}?resourceVersion=0&watch=true&bench={tag}")
    metrics: Metrics = {}
    # The pool's idle HTTP/1.1 connections are there already: count what the watches add.
    before = tcp_connections(target.pid, bench.tls_port) if target.pid is not None else 0
    start = time.perf_counter()
    try:
        await fleet.open(count or cfg.watches)
        metrics["open_s"] = round(time.perf_counter() - start, 2)
        if target.pid is not None:
            metrics["upstream_conns"] = tcp_connections(target.pid, bench.tls_port) - before
        metrics["open_failures"] = len(fleet.failures)
        if fleet.failures:
            metrics["first_failure"] = fleet.failures[0][:200]
        held = (await _upstream(bench, f"{WATCHES_PATH}?bench={tag}"))["open"]
        metrics["held"] = held
        cpu0 = _cpu(target)
        idle = time.perf_counter()
        await asyncio.sleep(cfg.watch_idle_seconds)  # idle: what does holding N streams cost?
        if target.pid is not None and cpu0 is not None:
            metrics["rss_mb"] = round(rss_mb(target.pid), 1)
            used = cpu_seconds(target.pid) - cpu0
            metrics["idle_cpu_pct"] = round(100 * used / (time.perf_counter() - idle), 1)
        singles: list[float] = []
        lost = 0
        for _ in range(cfg.event_samples):
            fleet.expect(1)
            await _upstream(bench, f"{EMIT_PATH}?n=1&bench={tag}")
            if await fleet.wait(2.0):
                singles.append(fleet.delays_ms[0])
            else:
                lost += 1
            await asyncio.sleep(0.02)
        metrics["event_p50_ms"] = _round(percentile(singles, 50), 2)
        metrics["event_p99_ms"] = _round(percentile(singles, 99), 2)
        broadcast_last: list[float] = []
        broadcast_all: list[float] = []
        for _ in range(cfg.broadcasts):
            fleet.expect(held)
            sent = (await _upstream(bench, f"{EMIT_PATH}?n=0&bench={tag}"))["sent"]
            await fleet.wait(15.0)
            got = list(fleet.delays_ms)
            lost += sent - len(got)
            if got:
                broadcast_all.extend(got)
                broadcast_last.append(max(got))
            await asyncio.sleep(0.1)
        metrics["broadcast_p50_ms"] = _round(percentile(broadcast_all, 50), 2)
        metrics["broadcast_last_ms"] = _round(percentile(broadcast_last, 50), 2)
        metrics["events_lost"] = lost
    finally:
        fleet.close()
    # The proxy should close its upstream streams when the clients go away.
    release = time.perf_counter()
    left = -1
    while time.perf_counter() - release < 10:
        left = (await _upstream(bench, f"{WATCHES_PATH}?bench={tag}"))["open"]
        if left == 0:
            break
        await asyncio.sleep(0.05)
    metrics["left_open"] = left
    metrics["release_s"] = round(time.perf_counter() - release, 2)
    return metrics


async def verify(bench: Bench, target: Target) -> Metrics:
    """Same bytes through every target: the pod, the list, and the gzip'ed list."""
    pod = (bench.payloads.root / POD_PATH.lstrip("/")).read_bytes()
    listing = (bench.payloads.root / LIST_PATH.lstrip("/")).read_bytes()
    problems: list[str] = []
    reply = await http_get(target.port, POD_PATH)
    if reply.status != 200 or reply.body != pod:
        problems.append(f"pod: {reply.status} {reply.body[:120]!r}")
    reply = await http_get(target.port, LIST_PATH)
    if reply.status != 200 or reply.body != listing:
        problems.append(f"list: {reply.status}, {len(reply.body)} bytes")
    reply = await http_get(target.port, LIST_PATH, ("Accept-Encoding: gzip",))
    gz_ok = b"content-encoding: gzip" in reply.headers.lower() and gzip.decompress(reply.body) == listing
    if reply.status != 200 or not gz_ok:
        problems.append(f"gzip list: {reply.status}, {len(reply.body)} bytes")
    return {"ok": int(not problems), "problems": "; ".join(problems) or None}
