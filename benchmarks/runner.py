"""One benchmark run: set up the upstream, then interleaved rounds over all targets.

Every round starts both proxies afresh (so start-up and peak memory are measured per
round) and runs every scenario against every target before moving to the next
scenario, so slow drifts in machine load hit all targets alike. The order of targets
rotates from round to round, so no target always goes first; for the small GET,
kproxy-observed runs right next to plain kproxy, before and after it in turn.
Everything this module starts is stopped by PID in ``finally``, also on Ctrl-C and
on errors.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import cold, https, scenarios
from .config import OBSERVED, Config
from .deps import tool_versions
from .environment import Environment, environment
from .noise import Layout, NoiseProbe
from .procs import rss_mb
from .progress import Progress
from .scenarios import Bench, Metrics
from .targets import Target, start_proxy
from .wrk import run_wrk

__all__ = ["run"]

Record = dict[str, Any]


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


class _Round:
    """Collects one round's measurements, each with the noise seen while it ran."""

    def __init__(self, index: int, order: list[str], cores: Layout | None) -> None:
        self.record: Record = {"round": index, "order": order, "measurements": []}
        self.live: dict[str, Target] = {}
        self._cores = cores

    def _proxy_pids(self) -> list[int]:
        return [t.pid for t in self.live.values() if t.pid is not None]

    async def measure(self, scenario: str, target: str, work: Callable[[], Awaitable[Metrics]]) -> Metrics:
        probe = NoiseProbe(self._cores, self._proxy_pids)
        probe.start()
        error = None
        try:
            metrics = await work()
        except Exception as exc:  # recorded, not fatal: the other targets still get measured
            metrics, error = {}, f"{type(exc).__name__}: {exc}"[:500]
        noise = probe.stop()
        self.record["measurements"].append(
            {"scenario": scenario, "target": target, "metrics": metrics, "noise": noise.as_dict(), "error": error}
        )
        return metrics


def _steps(config: Config, targets: list[str]) -> int:
    proxies = len([t for t in targets if t != "direct"])
    full = len([t for t in targets if t != OBSERVED])  # the observed kproxy only does the small GET
    per_round = proxies * (4 if config.warmup_seconds else 3) - 2 * (OBSERVED in targets)  # no cold runs
    per_round += full * 4 + len(targets) * len(config.connections)
    per_round += full * bool(config.big_watches)
    per_round += "direct" in targets  # the list over TLS with curl
    per_round += 2 * ("kproxy" in targets) + ("kubectl" in targets)  # small GET over HTTPS
    return config.rounds * per_round + full  # + the verification in round 1


def _get_order(targets: list[Target], round_number: int) -> list[Target]:
    """The small GET's order in a round: the rotation's, with kproxy-observed right
    next to plain kproxy, after it in odd rounds and before it in even ones.

    Their ratio is the measure of what observing costs (a few percent), so the two
    runs go back to back, where the machine's drift (up to tens of percent from one
    minute to the next on a shared VM) has the least time to work, and the alternation
    cancels a bias of going first or second."""
    observed = [t for t in targets if t.name == OBSERVED]
    order = [t for t in targets if t.name != OBSERVED]
    plain = next((i for i, t in enumerate(order) if t.name == "kproxy"), None)
    if not observed or plain is None:
        return targets
    order.insert(plain + 1 if round_number % 2 else plain, observed[0])
    return order


async def run(config: Config, kubectl: str | None, keep_workdir: bool = False) -> Record:
    targets = [t for t in config.targets if t != "kubectl" or kubectl]
    progress = Progress(_steps(config, targets), config.estimate_seconds())
    result: Record = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "machine": _machine(),
        "versions": tool_versions(kubectl),
        "targets": targets,
        "rounds": [],
    }
    try:
        import uvloop  # noqa: F401

        result["harness_loop"] = "uvloop"
    except ImportError:
        result["harness_loop"] = "asyncio"
    progress.note("setting up: certificates, payloads, upstream program, nginx ...")
    async with environment(config, keep_workdir) as env:
        result["versions"]["kproxy"] = env.kproxy_version
        result["layout"] = env.layout
        result["fd_limit"] = env.fd_limit
        result["payloads"] = {
            "pod_bytes": env.payloads.pod_bytes,
            "list_bytes": env.payloads.list_bytes,
            "list_gzip_bytes": env.payloads.list_gzip_bytes,
        }
        bench = Bench(config, env.payloads, env.upstream_port, env.nginx.tls_port, env.pki)
        for index in range(config.rounds):
            shift = index % len(targets)
            order = targets[shift:] + targets[:shift]
            rnd = _Round(index + 1, order, env.cores)
            result["rounds"].append(rnd.record)
            await _one_round(bench, rnd, order, env, kubectl or "", progress, verify=index == 0)
        progress.finish(f"done: {config.rounds} rounds")
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return result


async def _one_round(
    bench: Bench, rnd: _Round, order: list[str], env: Environment, kubectl: str, progress: Progress, verify: bool
) -> None:
    cfg = bench.config
    procs = env.procs
    label = f"round {rnd.record['round']}/{cfg.rounds}"
    live = rnd.live
    if "direct" in order:
        live["direct"] = Target("direct", env.nginx.plain_port)
    try:
        for name in order:
            if name == "direct":
                continue
            progress.step(f"{label} · start · {name}")

            async def start(name: str = name) -> Metrics:
                target = await start_proxy(
                    procs, name, kubectl, env.kubeconfig, env.home, env.proxy_cpus, env.kproxy_dir
                )
                live[name] = target
                assert target.pid is not None and target.startup_s is not None
                return {"startup_s": round(target.startup_s, 3), "idle_rss_mb": round(rss_mb(target.pid), 1)}

            await rnd.measure("startup", name, start)
        targets = [live[name] for name in order if name in live]
        # kproxy with metrics and the access log on is there for the small GET only.
        full = [target for target in targets if target.name != OBSERVED]
        if cfg.warmup_seconds:
            for target in targets:
                if target.child is not None:
                    progress.step(f"{label} · warm-up · {target.name}")
                    # Connections, pools and caches settle before anything counts.
                    await run_wrk(f"http://127.0.0.1:{target.port}/version", max(cfg.connections), cfg.warmup_seconds)
        if verify:
            for target in full:
                progress.step(f"{label} · verify responses · {target.name}")
                await rnd.measure("verify", target.name, partial(scenarios.verify, bench, target))
        for conns in cfg.connections:
            for target in _get_order(targets, rnd.record["round"]):
                progress.step(f"{label} · small GET c={conns} · {target.name}")
                await rnd.measure(
                    f"get_c{conns}", target.name, partial(scenarios.wrk_get, target, conns, cfg.get_seconds)
                )
        await _https_round(bench, rnd, order, env, progress, label)
        for gzipped in (False, True):
            scenario = "list_gzip" if gzipped else "list"
            for target in full:
                progress.step(f"{label} · 10 MB list{' (gzip)' if gzipped else ''} · {target.name}")
                await rnd.measure(scenario, target.name, partial(scenarios.wrk_list, target, cfg.list_seconds, gzipped))
                if target.name == "direct" and not gzipped:
                    # The baseline a TLS-terminating proxy can be held to, in the same
                    # slot of the rotation as plain direct.
                    progress.step(f"{label} · 10 MB list · direct over TLS (curl)")
                    await rnd.measure("list_tls", "direct", partial(scenarios.curl_list_tls, bench, cfg.list_seconds))
        for target in full:
            progress.step(f"{label} · exec-style upgrade echo · {target.name}")
            await rnd.measure("echo", target.name, partial(scenarios.echo, target, cfg.echo_seconds))
        for target in full:
            if target.pid is not None:
                # Peak RSS of the request-load scenarios, before the watches add theirs.
                rnd.record["measurements"].append(
                    {
                        "scenario": "memory",
                        "target": target.name,
                        "error": None,
                        "noise": None,
                        "metrics": {"peak_rss_mb": round(rss_mb(target.pid, "VmHWM"), 1)},
                    }
                )
        await _cold(bench, rnd, [t for t in full if t.child is not None], env, kubectl, progress, label)
        for target in full:
            progress.step(f"{label} · {cfg.watches} watches · {target.name}")
            tag = f"r{rnd.record['round']}-{target.name}"
            await rnd.measure("watch", target.name, partial(scenarios.watches, bench, target, tag))
        if cfg.big_watches:
            for target in full:
                progress.step(f"{label} · {cfg.big_watches} watches · {target.name}")
                tag = f"r{rnd.record['round']}-{target.name}-big"
                work = partial(scenarios.watches, bench, target, tag, cfg.big_watches)
                await rnd.measure("watch_big", target.name, work)
    finally:
        for target in live.values():
            if target.child is not None:
                rnd.record.setdefault("exit_codes", {})[target.name] = await procs.stop(target.child)


async def _https_round(
    bench: Bench, rnd: _Round, order: list[str], env: Environment, progress: Progress, label: str
) -> None:
    """Small GET over HTTPS (see :mod:`benchmarks.https`), in the round's target order."""
    cfg = bench.config
    cert, key = env.pki.server_cert, env.pki.server_key
    for name in order:
        target = rnd.live.get(name)
        if target is None or target.child is None or name == OBSERVED:
            continue
        if name == "kproxy":
            progress.step(f"{label} · small GET over HTTPS · kproxy's own TLS")

            async def own() -> Metrics:
                tls = await https.start_kproxy_tls(
                    env.procs, env.kubeconfig, env.home, cert, key, env.proxy_cpus, env.kproxy_dir
                )
                try:
                    assert tls.child is not None
                    return await https.https_get(tls.port, [tls.child.pid], cfg.get_seconds, cfg.warmup_seconds)
                finally:
                    if tls.child is not None:
                        await env.procs.stop(tls.child)

            await rnd.measure("get_https", "kproxy", own)
        progress.step(f"{label} · small GET over HTTPS · {name} behind stunnel")

        async def fronted(target: Target = target) -> Metrics:
            assert target.child is not None
            front, port = await https.start_stunnel(
                env.procs, env.workdir, target.port, cert, key, env.proxy_cpus, target.name
            )
            try:
                pids = [target.child.pid, front.pid]
                return await https.https_get(port, pids, cfg.get_seconds, cfg.warmup_seconds)
            finally:
                await env.procs.stop(front)

        await rnd.measure("get_https" if name == "kubectl" else "get_https_front", name, fronted)


async def _cold(
    bench: Bench, rnd: _Round, proxies: list[Target], env: Environment, kubectl: str, progress: Progress, label: str
) -> None:
    """The cold burst and the cold watches, each on proxies started for the purpose."""
    cfg = bench.config
    for target in proxies:
        name = target.name

        async def fresh(name: str = name) -> Target:
            return await start_proxy(env.procs, name, kubectl, env.kubeconfig, env.home, env.proxy_cpus, env.kproxy_dir)

        async def stop(fresh_target: Target) -> object:
            assert fresh_target.child is not None
            return await env.procs.stop(fresh_target.child)

        progress.step(f"{label} · cold burst ({cfg.burst_connections} connections) · {name}")
        await rnd.measure("cold_burst", name, partial(cold.cold_burst, bench, fresh, stop))
        progress.step(f"{label} · cold: {cfg.cold_watches} watches × {cfg.cold_runs} · {name}")
        tag = f"r{rnd.record['round']}-{name}-cold"
        await rnd.measure("cold_watch", name, partial(cold.cold_watches, bench, fresh, stop, tag))
