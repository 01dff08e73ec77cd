"""``python -m benchmarks.observed [REF]``: what metrics and the JSON access log cost, finely.

The full run compares kproxy with and without them once per round, in runs of a few
seconds; on a shared VM whose speed drifts by tens of percent from minute to minute, a
cost of a few percent hides in that. This keeps both running (plain kproxy, and kproxy
with ``--metrics-address`` and ``--access-log=json`` to a file, as the full run's
``kproxy-observed``) and loads them in alternating slices of ``--seconds`` (ABBA order,
so going first or second cancels), ``--pairs`` times, in the benchmark's environment and
CPU layout. It prints the ratio of their requests per second (over all pairs, the
median pair and per block of 4 pairs, as a few-second run would see it) and the proxy's
user and system CPU per request.

``--same`` runs plain kproxy on both sides: the ratio it prints (ideally 1.00) shows
how finely the machine can measure at the moment. Slices last 4 seconds unless
``--seconds`` says otherwise, the full run's measurement length: its steady state. A
proxy that has just been idle pays more CPU per request in its first second, which
dilutes the difference, so one-second slices flatter observing (0.915 against 0.86–0.90
for the same code). What slices cannot split fairly is work the kernel does later, on
its own schedule: the access log file's writeback to disk lands in either side's slices.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from .config import OBSERVED, QUICK
from .environment import _compile, environment
from .instructions import _export
from .procs import cpu_user_system
from .scenarios import wrk_get
from .targets import Target, start_proxy

__all__ = ["main"]


class _Side:
    """One of the two proxies: its requests per second and CPU per slice."""

    def __init__(self, target: Target) -> None:
        assert target.pid is not None
        self.target, self.pid = target, target.pid
        self.rps: list[float] = []
        self.user = self.system = 0.0

    async def slice(self, connections: int, seconds: int) -> None:
        """One slice of the full run's small GET (the same request, through wrk_get)."""
        user, system = cpu_user_system(self.pid)
        metrics = await wrk_get(self.target, connections, seconds)
        user2, system2 = cpu_user_system(self.pid)
        rps = metrics["rps"]
        assert isinstance(rps, (int, float)), metrics  # wrk printed a rate
        self.rps.append(float(rps))
        self.user += user2 - user
        self.system += system2 - system

    def per_request(self, seconds: int) -> str:
        requests = sum(self.rps) * seconds
        return f"user {self.user / requests * 1e6:.1f} µs, system {self.system / requests * 1e6:.1f} µs per request"


async def _run(ref: str, connections: int, pairs: int, seconds: int, same: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="kproxy-observed-"))
    try:
        source = _export(ref, work)
        _compile(source)
        async with environment(QUICK) as env:
            names = ("kproxy", "kproxy" if same else OBSERVED)
            sides = []
            for name in names:
                target = await start_proxy(env.procs, name, "", env.kubeconfig, env.home, env.proxy_cpus, source)
                sides.append(_Side(target))
            try:
                for side in sides:
                    await wrk_get(side.target, connections, 2)  # pools, caches and verdicts settle
                for n in range(pairs):
                    for side in sides if n % 2 == 0 else sides[::-1]:
                        await side.slice(connections, seconds)
            finally:
                for side in sides:
                    assert side.target.child is not None
                    await env.procs.stop(side.target.child)
        plain, other = sides
        label = "kproxy / kproxy" if same else "with metrics + JSON access log / without"
        pair = [b / a for a, b in zip(plain.rps, other.rps, strict=True)]
        blocks = [sum(other.rps[i : i + 4]) / sum(plain.rps[i : i + 4]) for i in range(0, pairs - 3, 4)]
        print(f"small GET, {connections} connections, {pairs} pair(s) of {seconds} s slices ({ref}):")
        print(f"  {label}: {sum(other.rps) / sum(plain.rps):.3f} over all pairs")
        print(f"  median pair {statistics.median(pair):.3f} ({min(pair):.2f}–{max(pair):.2f})")
        if blocks:
            print(f"  per 4 pairs: {' '.join(f'{b:.2f}' for b in blocks)}")
        print(f"  plain kproxy: {statistics.median(plain.rps):,.0f} req/s median; {plain.per_request(seconds)}")
        print(f"  {names[1]}: {statistics.median(other.rps):,.0f} req/s median; {other.per_request(seconds)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.observed", description=__doc__.splitlines()[0])
    p.add_argument("ref", nargs="?", default="worktree", help="a git ref or 'worktree' (default: worktree)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--pairs", type=int, default=8, help="pairs of slices (default 8)")
    p.add_argument(
        "--seconds", type=int, default=4, help="length of a slice, whole seconds (default 4: a full run's steady state)"
    )
    p.add_argument("--same", action="store_true", help="plain kproxy on both sides (how finely one can measure)")
    args = p.parse_args(argv)
    for flag, value in (("--connections", args.connections), ("--pairs", args.pairs), ("--seconds", args.seconds)):
        if value < 1:
            p.error(f"{flag} {value}: at least 1")
    if shutil.which("wrk") is None:
        print("error: benchmarks.observed needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    asyncio.run(_run(args.ref, args.connections, args.pairs, args.seconds, args.same))
    return 0


if __name__ == "__main__":
    sys.exit(main())
