"""``python -m benchmarks.startup [REF ...]``: start-up to the first answer, cold, many times.

The full run measures start-up once per round; a change to start-up wants more: this
starts each ref (a git ref, or ``worktree``) ``--runs`` times, interleaved, in the
benchmark's own environment (nginx with TLS and client certificates, the same kubeconfig
and flags, kproxy byte-compiled first) and prints, per ref, the median and range of the
time from spawning ``python -m kproxy`` to the first ``200`` for ``/version`` through it
(:func:`benchmarks.targets.start_proxy`, the ``startup`` scenario's measure), beside
``kubectl proxy``'s when kubectl is on PATH. The target is 0.15 s or 2× kubectl's,
whichever is larger.

Wall-clock medians still move with whatever else the machine does. ``--instructions``
adds what does not: the instructions kproxy executes from its first one to the first
answer, counted by valgrind's callgrind (one start per ref; needs valgrind). How the
time divides: ``docs/startup.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .clients import http_get
from .config import QUICK
from .environment import Environment, _compile, environment
from .instructions import _callgrind_kproxy, _control, _export, _total
from .payloads import VERSION_PATH
from .targets import proxy_command, proxy_env, start_proxy

__all__ = ["main"]

TARGET_S = 0.15


async def _instructions(env: Environment, source: Path, work: Path) -> float:
    """Instructions from kproxy's start to its first answer (callgrind, one cold start)."""
    out = work / f"callgrind-startup-{time.monotonic_ns()}.out"
    command = proxy_command("kproxy", "kubectl", env.kubeconfig, env.home)
    proc_env = dict(proxy_env(env.home), PYTHONPATH=str(source))
    options = [f"--callgrind-out-file={out}"]
    async with _callgrind_kproxy(options, command, proc_env, source, f"from {source}") as (proc, port):
        reply = await http_get(port, VERSION_PATH, timeout=300)
        if reply.status != 200:
            raise SystemExit(f"error: /version through kproxy from {source} answered {reply.status}")
        await _control("-d", str(proc.pid))
    return _total(work, out)


def _line(label: str, times: list[float], kubectl: float | None) -> str:
    median = statistics.median(times)
    line = f"{label:>24}: {median:.3f} s median ({min(times):.3f}–{max(times):.3f}, {len(times)} starts)"
    if kubectl:
        target = max(TARGET_S, 2 * kubectl)
        line += f"; {median / kubectl:.2f}× kubectl; target {target:.2f} s: {'met' if median <= target else 'not met'}"
    return line


async def _run(refs: list[str], runs: int, instructions: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="kproxy-startup-"))
    try:
        sources = {ref: _export(ref, work) for ref in refs}
        for source in sources.values():
            _compile(source)
        kubectl = shutil.which("kubectl")
        async with environment(QUICK) as env:
            times: dict[str, list[float]] = {name: [] for name in [*refs, *(["kubectl proxy"] if kubectl else [])]}
            for _ in range(runs):
                for name in times:
                    if name == "kubectl proxy":
                        target = await start_proxy(
                            env.procs, "kubectl", kubectl or "", env.kubeconfig, env.home, env.proxy_cpus
                        )
                    else:
                        target = await start_proxy(
                            env.procs, "kproxy", "", env.kubeconfig, env.home, env.proxy_cpus, sources[name]
                        )
                    assert target.child is not None and target.startup_s is not None
                    await env.procs.stop(target.child)
                    times[name].append(target.startup_s)
            reference = statistics.median(times["kubectl proxy"]) if kubectl else None
            if reference is not None:
                print(f"{'kubectl proxy':>24}: {reference:.3f} s median ({len(times['kubectl proxy'])} starts)")
            for ref in refs:
                print(_line(ref, times[ref], reference))
            if instructions:
                counts = {ref: await _instructions(env, sources[ref], work) for ref in refs}
                for ref in refs:
                    print(f"{ref:>24}: {counts[ref] / 1e6:,.0f} million instructions to the first answer")
                for ref in refs[1:]:
                    print(f"{ref:>24} / {refs[0]}: {counts[ref] / counts[refs[0]]:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("refs", nargs="*", default=["worktree"], help="git refs or 'worktree' (default: worktree)")
    p.add_argument("--runs", type=int, default=20, help="cold starts per ref (default 20)")
    p.add_argument("--instructions", action="store_true", help="also count instructions to the first answer (valgrind)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs {args.runs}: at least 1")
    if args.instructions and (shutil.which("valgrind") is None or shutil.which("callgrind_control") is None):
        print("error: --instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    asyncio.run(_run(args.refs, args.runs, args.instructions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
