"""``python -m benchmarks soak [--minutes 30] [overrides]``: memory and descriptors under churn.

Sets up the benchmark upstream (nginx with TLS, client certificates and HTTP/2 in front
of the upstream program, as in the watch-churn leak report), starts kproxy and
``kubectl proxy`` side by side against it, and drives each with its own load client
(:mod:`benchmarks.soak_client`: watches with churn, events, small GETs, slow readers of
the large list). Every ``--interval`` seconds it reads each proxy's RSS, open
descriptors (``/proc/PID/fd``), threads and CPU from ``/proc``; when the load ends, it
keeps reading until the descriptors are back to their start-up count (or ``--settle``
runs out). Writes ``soak-<time>.{md,json,csv,png}`` (copied to ``soak-latest.*``) and prints
the Markdown (:mod:`benchmarks.soak_report`). Exit codes: 0 done (whatever the
verdicts), 2 a tool is missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import DEFAULT
from .deps import MissingTool, ensure_matplotlib, ensure_tools, tool_versions
from .environment import Environment, environment
from .procs import Child, cpu_seconds
from .soak_client import Counters
from .soak_report import summarize, to_markdown, write_csv, write_json
from .targets import REPO, Target, start_proxy

__all__ = ["main"]

Row = dict[str, Any]
PROXIES = ("kproxy", "kubectl")
_COUNTERS = {*Counters.__dataclass_fields__, "pending_opens"}  # what a reading takes from a client's status
# The cumulative ones, which the client's last line (after it closed everything) completes.
_TOTALS = _COUNTERS - {"watches_open", "pending_opens", "lag_max_ms", "lag_mean_ms"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks soak",
        description="kproxy and kubectl proxy side by side under watch churn, small GETs and slow readers: "
        "RSS, descriptors and threads over time, and whether memory levels off and descriptors come back.",
    )
    add = p.add_argument
    add("--minutes", type=float, default=30.0, help="length of the load, fractions allowed (default 30)")
    add("--watches", type=int, default=1000, help="watches held open through each proxy (default 1000)")
    add("--churn", type=float, default=20.0, help="watches closed and reopened per second (default 20)")
    add("--events-per-second", type=int, default=50, help="watch events the upstream sends a second (default 50)")
    add("--gets-per-second", type=float, default=20.0, help="small GETs a second, one connection each (default 20)")
    add("--slow-clients", type=int, default=8, help="concurrent slow readers of the large list (default 8)")
    add("--slow-kib-per-second", type=float, default=512.0, help="each slow reader's pace (default 512 KiB/s)")
    add("--list-pods", type=int, default=DEFAULT.list_pods, help="pods in the large list (default 3700, ~10 MB)")
    add("--interval", type=float, default=5.0, help="seconds between readings (default 5)")
    # Go's and kproxy's pools close idle connections after 90 s; 150 s lets them.
    add("--settle", type=float, default=150.0, help="longest wait for descriptors to return (default 150 s)")
    add(
        "--fd-slack", type=int, default=2, help="descriptors above the start-up count still counted as back (default 2)"
    )
    add("--growth-limit", type=float, default=10.0, help="most RSS growth over the second half that passes (MiB)")
    add("--targets", default="kproxy,kubectl", help="comma-separated subset of kproxy,kubectl (default both)")
    add("--kproxy-ref", help="measure kproxy as committed at this git ref (e.g. HEAD), not the working tree")
    add("--out", type=Path, default=DEFAULT.out_dir, help="output directory (default benchmarks/results)")
    add("--no-pin", action="store_true", help="do not pin the proxies to one CPU and the load to the other")
    add("--no-chart", action="store_true", help="skip the PNG (and installing matplotlib)")
    add("--keep-workdir", action="store_true", help="keep certificates, configs, logs and the clients' status files")
    return p


def _check(args: argparse.Namespace) -> list[str]:
    targets = [t for t in args.targets.split(",") if t]
    if not targets or set(targets) - set(PROXIES):
        raise SystemExit(f"error: --targets: {args.targets!r}: use a comma-separated subset of kproxy,kubectl")
    for flag, value, lowest in (
        ("--minutes", args.minutes, 0.05),
        ("--watches", args.watches, 1),
        ("--interval", args.interval, 0.5),
        ("--churn", args.churn, 0),
        ("--events-per-second", args.events_per_second, 0),
        ("--gets-per-second", args.gets_per_second, 0),
        ("--slow-clients", args.slow_clients, 0),
        ("--slow-kib-per-second", args.slow_kib_per_second, 1),
        ("--settle", args.settle, 0),
        ("--fd-slack", args.fd_slack, 0),
        ("--growth-limit", args.growth_limit, 0),
    ):
        if value < lowest:
            raise SystemExit(f"error: {flag}: {value} is below {lowest}")
    return targets


# -- readings from /proc ---------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """The kB and count fields of /proc/PID/status that the soak reads."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            found[key] = int(value.split()[0])
    return found


def _reading(target: str, pid: int, phase: str, t: float) -> Row | None:
    """One reading of a proxy; None once it is gone (or a zombie: no VmRSS any more)."""
    try:
        status = _status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    if "VmRSS" not in status:
        return None
    return {
        "target": target,
        "phase": phase,
        "t": round(t, 2),
        "rss_mib": round(status["VmRSS"] / 1024, 2),
        "fds": fds,
        "threads": status["Threads"],
        "cpu_s": round(cpu_seconds(pid), 2),
    }


def _peak(pid: int) -> float | None:
    try:
        return round(_status(pid)["VmHWM"] / 1024, 2)
    except (OSError, KeyError):
        return None


def _fd_limit(pid: int) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft} (hard {hard})"
    except OSError:
        pass
    return None


def _last_status(path: Path) -> Row:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    row: Row = json.loads(lines[-1]) if lines else {}
    return row


# -- the run ---------------------------------------------------------------------------


def _alive(name: str, target: Target, exits: dict[str, str], t: float) -> bool:
    """Whether the proxy still runs; the first time it does not, why goes into ``exits``."""
    assert target.child is not None
    if target.child.alive:
        return True
    if name not in exits:  # a finding, not a reason to stop measuring the other proxy
        tail = target.child.log_tail(600).strip().replace("\n", " | ")
        exits[name] = f"exited with {target.child.proc.returncode} at t={t:.0f} s: {tail}"
        print(f"soak: {name} {exits[name]}", file=sys.stderr, flush=True)
    return False


async def _start_client(env: Environment, args: argparse.Namespace, target: Target, status: Path) -> Child:
    cmd = [sys.executable, "-m", "benchmarks.soak_client", f"--port={target.port}"]
    cmd += [f"--upstream-port={env.upstream_port}", f"--tag=soak-{target.name}", f"--status-file={status}"]
    cmd += [f"--seconds={args.minutes * 60}", f"--watches={args.watches}", f"--churn={args.churn}"]
    cmd += [f"--events-per-second={args.events_per_second}", f"--gets-per-second={args.gets_per_second}"]
    cmd += [f"--slow-clients={args.slow_clients}", f"--slow-kib-per-second={args.slow_kib_per_second}"]
    cmd += [f"--list-bytes={env.payloads.list_bytes}", f"--interval={args.interval}"]
    child = await env.procs.start(f"soak-client-{target.name}", cmd, cpus=env.load_cpus, cwd=REPO)
    line = await asyncio.wait_for(child.first_line, 30)
    if line != "soak client started":
        raise RuntimeError(f"the soak client for {target.name} did not start: {line!r} {child.log_tail()}")
    return child


def _progress(started: float, total: float, latest: dict[str, Row]) -> None:
    parts = []
    for name, r in latest.items():
        parts.append(
            f"{name}: RSS {r['rss_mib']:.0f} MiB, {r['fds']} fds, {r['threads']} threads, "
            f"{r.get('watches_open', 0)} watches, {r.get('replaced', 0)} replaced"
        )
    elapsed = time.monotonic() - started
    print(f"soak {elapsed / 60:5.1f}/{total / 60:.1f} min · " + " · ".join(parts), file=sys.stderr, flush=True)


async def _load(
    env: Environment, args: argparse.Namespace, live: dict[str, Target], samples: list[Row], exits: dict[str, str]
) -> float:
    """Run the load clients to their end, reading the proxies meanwhile; the load's length."""
    statuses = {name: env.workdir / f"soak-{name}.jsonl" for name in live}
    clients = {name: await _start_client(env, args, t, statuses[name]) for name, t in live.items()}
    started = time.monotonic()
    seconds = args.minutes * 60
    deadline = started + seconds + 60  # the clients stop themselves; this bounds a stuck one
    last_progress = started
    try:
        while any(c.alive for c in clients.values()):
            await asyncio.sleep(args.interval)
            now = time.monotonic()
            latest = {}
            for name, target in live.items():
                assert target.pid is not None
                counters = _last_status(statuses[name])
                # A client that closed everything no longer loads its proxy: settle's turn.
                if not clients[name].alive or counters.get("phase") == "done":
                    continue
                if not _alive(name, target, exits, now - started):
                    continue
                row = _reading(name, target.pid, "load", now - started)
                if row is None:  # gone since _alive looked; the next round records why
                    continue
                row.update({k: v for k, v in counters.items() if k in _COUNTERS})
                samples.append(row)
                latest[name] = row
            if latest and now - last_progress >= 60:
                _progress(started, seconds, latest)
                last_progress = now
            if now > deadline:
                stuck = ", ".join(n for n, c in clients.items() if c.alive)
                raise RuntimeError(f"soak clients did not stop at the end of the load: {stuck}")
    finally:
        for child in clients.values():
            await env.procs.stop(child)
    failed = {n: c.proc.returncode for n, c in clients.items() if c.proc.returncode != 0}
    if failed:
        raise RuntimeError(f"soak clients exited with {failed}: {clients[next(iter(failed))].log_tail()}")
    for name in live:  # the clients' final totals (written after they closed everything)
        done = _last_status(statuses[name])
        for row in reversed(samples):
            if row["target"] == name and row["phase"] == "load":
                row.update({k: v for k, v in done.items() if k in _TOTALS})
                break
    return time.monotonic() - started


async def _settle(
    args: argparse.Namespace, live: dict[str, Target], samples: list[Row], offset: float, exits: dict[str, str]
) -> None:
    """Read every second until each proxy's descriptors are back, for at most ``--settle``."""
    start_fds = {r["target"]: r["fds"] for r in samples if r["phase"] == "start"}
    began = time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        waited = time.monotonic() - began
        running = {n: t for n, t in live.items() if _alive(n, t, exits, offset + waited)}
        readings = [_reading(n, t.pid, "settle", offset + waited) for n, t in running.items() if t.pid is not None]
        rows = [r for r in readings if r is not None]
        samples.extend(rows)
        back = all(r["fds"] <= start_fds[r["target"]] + args.fd_slack for r in rows)
        if waited >= args.settle or (waited >= 2 and back):
            return


async def _run(args: argparse.Namespace, targets: list[str], kubectl: str | None) -> Row:
    config = DEFAULT.with_overrides(list_pods=args.list_pods, kproxy_ref=args.kproxy_ref, pin=not args.no_pin)
    result: Row = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": tool_versions(kubectl)}
    samples: list[Row] = []
    exits: dict[str, str] = {}  # proxies that ended before they were stopped, and why
    async with environment(config, args.keep_workdir) as env:
        result["versions"]["kproxy"] = env.kproxy_version
        result.update(layout=env.layout, list_bytes=env.payloads.list_bytes, harness_fd_limit=env.fd_limit)
        live: dict[str, Target] = {}
        try:
            for name in targets:
                live[name] = await start_proxy(
                    env.procs, name, kubectl or "", env.kubeconfig, env.home, env.proxy_cpus, env.kproxy_dir
                )
            result["proxy_fd_limits"] = {n: _fd_limit(t.pid) for n, t in live.items() if t.pid is not None}
            await asyncio.sleep(1.0)  # start-up's own allocations settle before the first reading
            for name, target in live.items():
                assert target.pid is not None
                row = _reading(name, target.pid, "start", -1.0)
                if row is None:
                    raise RuntimeError(
                        f"{name} exited right after start-up: {target.child and target.child.log_tail()}"
                    )
                samples.append(row)
            print(f"soak: {', '.join(live)} started; load for {args.minutes:g} min", file=sys.stderr, flush=True)
            load_seconds = await _load(env, args, live, samples, exits)
            await _settle(args, live, samples, load_seconds, exits)
            running = {n: t for n, t in live.items() if _alive(n, t, exits, load_seconds)}
            hwm = {n: _peak(t.pid) for n, t in running.items() if t.pid is not None}
        finally:
            for target in live.values():
                if target.child is not None:
                    await env.procs.stop(target.child)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    result["samples"] = samples
    result["peak_rss_mib"] = hwm
    result["proxy_exits"] = exits
    return result


def _settings(args: argparse.Namespace) -> Row:
    keys = ("watches", "churn", "events_per_second", "gets_per_second", "slow_clients", "slow_kib_per_second")
    out: Row = {k: getattr(args, k) for k in keys}
    out.update(load_seconds=args.minutes * 60, interval=args.interval, settle=args.settle)
    out.update(fd_slack=args.fd_slack, growth_limit_mib=args.growth_limit, list_pods=args.list_pods)
    return out


def _runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


async def _cancellable(args: argparse.Namespace, targets: list[str], kubectl: str | None) -> Row:
    task = asyncio.current_task()
    assert task is not None
    # As in the benchmark run: Ctrl-C and SIGTERM cancel, so every finally stops its processes.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    return await _run(args, targets, kubectl)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    targets = _check(args)
    try:
        ensure_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kubectl = shutil.which("kubectl")
    if kubectl is None and "kubectl" in targets:
        print("warning: kubectl not on PATH: soaking kproxy alone", file=sys.stderr)
        targets = [t for t in targets if t != "kubectl"] or ["kproxy"]
    # Installed before the run, so pip never competes with a reading.
    chart_problem = "--no-chart" if args.no_chart else ensure_matplotlib()
    try:
        with _runner() as runner:
            result = runner.run(_cancellable(args, targets, kubectl))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        return 130
    result["command"] = "python -m benchmarks soak" + "".join(" " + shlex.quote(a) for a in argv)
    result["upstream"] = "nginx with TLS, client certificates and HTTP/2, in front of the upstream program"
    result["settings"] = _settings(args)
    result["summary"] = summarize(result["samples"], result["settings"], result["peak_rss_mib"], result["proxy_exits"])
    _write(result, args.out, chart_problem)
    return 0


def _write(result: Row, out: Path, chart_problem: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / time.strftime("soak-%Y%m%d-%H%M%S")
    suffixes = [".md", ".json", ".csv"]
    if chart_problem is None:
        from .soak_chart import draw

        try:
            draw(result, stem.with_suffix(".png"))
            suffixes.append(".png")
        except Exception as exc:  # a chart failure must not lose the readings
            chart_problem = f"{type(exc).__name__}: {exc}"
    result["chart"] = str(stem.with_suffix(".png")) if chart_problem is None else None
    result["chart_problem"] = chart_problem
    markdown = to_markdown(result)
    stem.with_suffix(".md").write_text(markdown)
    write_json(result, stem.with_suffix(".json"))
    write_csv(result["samples"], stem.with_suffix(".csv"))
    for suffix in suffixes:
        shutil.copyfile(stem.with_suffix(suffix), out / f"soak-latest{suffix}")
    print(markdown)
    print(f"wrote {stem}{', '.join(suffixes)} (and soak-latest.*)", file=sys.stderr)
    if chart_problem:
        print(f"warning: no chart: {chart_problem}", file=sys.stderr)
