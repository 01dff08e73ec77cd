"""How busy the machine was with things that are not ours, during one measurement.

/proc/stat counts CPU time per CPU for the whole machine (here: the whole VM).
Subtracting the CPU time of the harness's own process tree leaves what other processes
and kernel threads used. With the pinned layout this is done per core, which says who
was disturbed: foreign work on the proxy's core slows the proxy under test; foreign
work on the load core slows wrk, nginx and the upstream (every target alike, the direct
baseline most). Steal is time the hypervisor gave to someone else. Each measurement
records all of these and is flagged noisy above the thresholds below.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .procs import CLK_TCK, cpu_seconds

__all__ = ["NOISY_CORE_PCT", "NOISY_OTHER_CORES", "NOISY_STEAL_PCT", "Layout", "Noise", "NoiseProbe"]

# 5% of the proxy's (or the load generator's) core taken by strangers moves a CPU-bound
# result by about as much; 2% of CPU time stolen likewise. Without pinning, a tenth of a
# core used anywhere is the best available signal.
NOISY_CORE_PCT = 5.0
NOISY_STEAL_PCT = 2.0
NOISY_OTHER_CORES = 0.10
MIN_JUDGED_SECONDS = 0.5


@dataclass(frozen=True)
class Layout:
    load_cpu: int  # the harness, wrk, nginx and the upstream program
    proxy_cpu: int  # the proxies


@dataclass(frozen=True)
class Noise:
    seconds: float
    other_cores: float  # CPU used outside our tree, whole machine, in cores (1.0 = one core)
    steal_pct: float  # of all CPU time in the interval
    load_core_pct: float | None  # foreign use of the load core, % of that core; None: not pinned
    proxy_core_pct: float | None  # foreign use of the proxy core, % of that core

    @property
    def noisy(self) -> bool:
        if self.seconds < MIN_JUDGED_SECONDS:
            return False  # CPU time comes in 10 ms ticks: too coarse to judge this interval
        if self.steal_pct > NOISY_STEAL_PCT:
            return True
        if self.load_core_pct is None or self.proxy_core_pct is None:
            return self.other_cores > NOISY_OTHER_CORES
        return self.load_core_pct > NOISY_CORE_PCT or self.proxy_core_pct > NOISY_CORE_PCT

    def as_dict(self) -> dict[str, float | bool | None]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "seconds": round(self.seconds, 3),
            "other_cores": round(self.other_cores, 3),
            "steal_pct": round(self.steal_pct, 2),
            "load_core_pct": r(self.load_core_pct),
            "proxy_core_pct": r(self.proxy_core_pct),
            "noisy": self.noisy,
        }


def _proc_stat() -> dict[str, tuple[int, int, int]]:
    """Per line of /proc/stat ("cpu", "cpu0", ...): (busy, steal, total) jiffies."""
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *fields = line.split()
        values = [int(v) for v in fields]
        steal = values[7] if len(values) > 7 else 0
        # guest time is already included in user; irq/softirq are left out because the
        # kernel does not charge them to the process whose packets caused them.
        result[name] = (values[0] + values[1] + values[2], steal, sum(values[:8]))
    return result


class NoiseProbe:
    """``probe.start()`` … ``probe.stop()`` → :class:`Noise` for what ran in between.

    ``proxies`` returns the PIDs of the proxies alive at the time (they run on the proxy
    core; everything else of ours runs on the load core).
    """

    def __init__(
        self, layout: Layout | None, proxies: Callable[[], Sequence[int]] = tuple, root: int | None = None
    ) -> None:
        self._layout = layout
        self._proxies = proxies
        self._root = root if root is not None else os.getpid()
        self._t0 = 0.0
        self._stat0: dict[str, tuple[int, int, int]] = {}
        self._ours0 = 0.0
        self._proxy0: dict[int, float] = {}

    def _proxy_cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self._proxies()}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._stat0 = _proc_stat()
        self._ours0 = cpu_seconds(self._root)
        self._proxy0 = self._proxy_cpu()

    def stop(self) -> Noise:
        ours = cpu_seconds(self._root) - self._ours0
        proxy_now = self._proxy_cpu()
        # A proxy started inside the interval (the start-up measurement) used all of its
        # CPU time inside it. (None is stopped inside one.)
        proxies = sum(proxy_now[p] - self._proxy0.get(p, 0.0) for p in proxy_now)
        stat = _proc_stat()
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        busy, steal, total = (b - a for a, b in zip(self._stat0["cpu"], stat["cpu"]))
        other = max(0.0, busy / CLK_TCK - ours) / elapsed
        load_pct = proxy_pct = None
        if self._layout is not None:

            def core_busy(cpu: int) -> float:
                key = f"cpu{cpu}"
                return (stat[key][0] - self._stat0[key][0]) / CLK_TCK

            load_pct = 100 * max(0.0, core_busy(self._layout.load_cpu) - (ours - proxies)) / elapsed
            proxy_pct = 100 * max(0.0, core_busy(self._layout.proxy_cpu) - proxies) / elapsed
        return Noise(elapsed, other, 100.0 * steal / total if total else 0.0, load_pct, proxy_pct)
