"""``python -m benchmarks [--quick] [overrides]``: install what is missing, run, report.

``python -m benchmarks soak [...]`` is the long-running soak instead (:mod:`benchmarks.soak`).

Writes ``bench-<time>.{md,json,png}`` and copies them to ``latest.*`` in the output
directory (``benchmarks/results/`` by default, git-ignored), and prints the Markdown.
Exit codes: 0 done, 2 a tool is missing and cannot be installed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import DEFAULT, QUICK, TARGETS, Config
from .deps import MissingTool, ensure_matplotlib, ensure_tools

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="python -m benchmarks soak --help: the soak (memory and descriptors under watch churn, for minutes)",
    )
    p.add_argument("--quick", action="store_true", help="short run (< 2 minutes): fewer rounds, 1 s wrk runs")
    p.add_argument("--rounds", type=int, help=f"interleaved rounds (default {DEFAULT.rounds}, quick {QUICK.rounds})")
    p.add_argument("--get-seconds", type=int, help="seconds per small-GET wrk run")
    p.add_argument("--list-seconds", type=int, help="seconds per 10 MB list wrk run")
    p.add_argument("--warmup-seconds", type=int, help="warm-up per proxy per round; 0 = none")
    p.add_argument("--echo-seconds", type=float, help="seconds for each half of the upgrade echo")
    p.add_argument("--watches", type=int, help="concurrent idle watches (default 1000)")
    p.add_argument(
        "--big-watches", type=int, help="concurrent watches of the second watch scenario (default 5000; 0: skip)"
    )
    p.add_argument(
        "--h2-streams", type=int, help="nginx's HTTP/2 streams per connection (default 100, kube-apiserver's)"
    )
    p.add_argument("--burst-seconds", type=int, help="seconds of the cold burst (64 connections on a fresh proxy)")
    p.add_argument("--cold-watches", type=int, help="watches opened at once on a fresh proxy (default 250)")
    p.add_argument("--cold-runs", type=int, help="fresh proxies per round for the cold watches (default 3)")
    p.add_argument("--watch-idle-seconds", type=float, help="watches held idle before RSS is read (default 1)")
    p.add_argument("--event-samples", type=int, help="single events timed while the watches are open")
    p.add_argument("--broadcasts", type=int, help="events sent to all watches at once")
    p.add_argument("--connections", help="comma-separated wrk connection counts (default 1,16,64)")
    p.add_argument("--list-pods", type=int, help="pods in the list (default 3700, ~10 MB)")
    p.add_argument("--targets", help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--kproxy-ref", help="measure kproxy as committed at this git ref (e.g. HEAD), not the working tree")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/results)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-chart", action="store_true", help="skip the PNG (and installing matplotlib)")
    p.add_argument("--keep-workdir", action="store_true", help="keep certificates, configs and logs")
    return p


def _config(args: argparse.Namespace) -> Config:
    base = QUICK if args.quick else DEFAULT
    connections = tuple(int(c) for c in args.connections.split(",")) if args.connections else None
    targets = tuple(t for t in args.targets.split(",") if t) if args.targets else None
    if targets and set(targets) - set(TARGETS):
        raise SystemExit(f"error: --targets: unknown {sorted(set(targets) - set(TARGETS))}; use {','.join(TARGETS)}")
    return base.with_overrides(
        rounds=args.rounds,
        get_seconds=args.get_seconds,
        list_seconds=args.list_seconds,
        warmup_seconds=args.warmup_seconds,
        echo_seconds=args.echo_seconds,
        watches=args.watches,
        big_watches=args.big_watches,
        h2_streams=args.h2_streams,
        burst_seconds=args.burst_seconds,
        cold_watches=args.cold_watches,
        cold_runs=args.cold_runs,
        watch_idle_seconds=args.watch_idle_seconds,
        event_samples=args.event_samples,
        broadcasts=args.broadcasts,
        connections=connections,
        list_pods=args.list_pods,
        out_dir=args.out,
        kproxy_ref=args.kproxy_ref,
        targets=targets,
        pin=False if args.no_pin else None,
    )


async def _run(config: Config, kubectl: str | None, keep: bool) -> dict[str, Any]:
    from .runner import run

    task = asyncio.current_task()
    assert task is not None
    # Ctrl-C and SIGTERM cancel the run, so every finally stops its processes. Installed
    # explicitly: a shell starts background jobs with SIGINT ignored, and asyncio's own
    # Ctrl-C handling is then off.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    return await run(config, kubectl, keep)


def _runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["soak"]:
        from .soak import main as soak

        return soak(given[1:])
    args = _parser().parse_args(argv)
    config = _config(args)
    try:
        ensure_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kubectl = shutil.which("kubectl")
    if kubectl is None and "kubectl" in config.targets:
        print("warning: kubectl not on PATH: measuring without kubectl proxy (no ratios)", file=sys.stderr)
    # Installed before the run, so pip never competes with a measurement.
    chart_problem = "--no-chart" if args.no_chart else ensure_matplotlib()
    print(
        f"kproxy benchmarks: {config.rounds} rounds, estimated {config.estimate_seconds() / 60:.1f} min",
        file=sys.stderr,
        flush=True,
    )
    try:
        with _runner() as runner:
            result = runner.run(_run(config, kubectl, args.keep_workdir))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        return 130
    from .report import summarize, to_markdown, write_json

    command = "python -m benchmarks" + (
        "".join(" " + shlex.quote(a) for a in sys.argv[1:])
        if argv is None
        else "".join(" " + shlex.quote(a) for a in argv)
    )
    result["command"] = command
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(config).items()}
    summarize(result)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    stem = out / time.strftime("bench-%Y%m%d-%H%M%S")
    markdown = to_markdown(result, command)
    outputs = [stem.with_suffix(".md"), stem.with_suffix(".json")]
    outputs[0].write_text(markdown)
    if chart_problem is None:
        from .chart import draw

        try:
            draw(result, stem.with_suffix(".png"))
            outputs.append(stem.with_suffix(".png"))
        except Exception as exc:  # a chart failure must not lose the measured numbers
            chart_problem = f"{type(exc).__name__}: {exc}"
    result["chart"] = str(stem.with_suffix(".png")) if chart_problem is None else None
    result["chart_problem"] = chart_problem
    write_json(result, outputs[1])
    for path in outputs:
        shutil.copyfile(path, out / f"latest{path.suffix}")
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in outputs) + " (and latest.*)", file=sys.stderr)
    if chart_problem:
        print(f"warning: no chart: {chart_problem}", file=sys.stderr)
    return 0
