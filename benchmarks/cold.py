"""Scenarios on a freshly started proxy: what the first seconds of a proxy's life cost.

* **cold burst**: a proxy started a moment ago is hit at once by wrk with 64
  connections for 2 s: p50/p99 include the pool's growth, and the upstream connections
  it holds afterwards are the TLS handshakes it made (none close within the burst).
* **cold watches**: a proxy started a moment ago opens 250 watches at once, three times
  (a new proxy each time); the median time to open them all is the issue's check
  against kubectl proxy (kproxy ≤ 1.5× kubectl + 0.15 s), with the upstream connections
  they took.

The proxy is started by ``start`` and stopped here by PID, whatever happens.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

from .clients import WatchFleet
from .payloads import POD_PATH
from .procs import tcp_connections
from .scenarios import Bench, Metrics
from .targets import Target
from .upstream import WATCH_PATH
from .wrk import run_wrk

__all__ = ["cold_burst", "cold_watches"]

StartFresh = Callable[[], Awaitable[Target]]
Stop = Callable[[Target], Awaitable[object]]


async def cold_burst(bench: Bench, start: StartFresh, stop: Stop) -> Metrics:
    cfg = bench.config
    target = await start()
    try:
        url = f"http://127.0.0.1:{target.port}{POD_PATH}"
        result = await run_wrk(url, cfg.burst_connections, cfg.burst_seconds, ["Accept: application/json"])
        metrics: Metrics = dict(result.as_dict())
        metrics["upstream_conns"] = tcp_connections(target.pid or 0, bench.tls_port)
        return metrics
    finally:
        await stop(target)


async def cold_watches(bench: Bench, start: StartFresh, stop: Stop, tag: str) -> Metrics:
    cfg = bench.config
    times: list[float] = []
    conns: list[int] = []
    failures = 0
    for run in range(cfg.cold_runs):
        target = await start()
        fleet = WatchFleet(target.port, f"{WATCH_PATH}?resourceVersion=0&watch=true&bench={tag}-{run}")
        try:
            begin = time.perf_counter()
            await fleet.open(cfg.cold_watches, concurrency=cfg.cold_watches)
            times.append(time.perf_counter() - begin)
            failures += len(fleet.failures)
            conns.append(tcp_connections(target.pid or 0, bench.tls_port))
        finally:
            fleet.close()
            await stop(target)
    return {
        "open_s": round(statistics.median(times), 3),
        "open_s_runs": ",".join(f"{t:.3f}" for t in times),
        "upstream_conns": max(conns) if conns else None,
        "open_failures": failures,
    }
