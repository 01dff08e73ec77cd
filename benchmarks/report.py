"""Turn a run's raw rounds into a summary (medians, min–max, per-round ratios, target
verdicts) and write it as JSON and Markdown.

Ratios are kproxy/kubectl computed inside each round (same minute, same machine load),
then summarised; a ratio of medians would mix rounds. The same goes for the 10 MB list's
kproxy/direct-over-TLS ratio. Every round is kept, noisy ones included and flagged:
dropping them would be choosing which numbers to believe.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import OBSERVED
from .noise import NOISY_CORE_PCT, NOISY_OTHER_CORES, NOISY_STEAL_PCT, Noise

__all__ = ["METRICS", "Metric", "metrics_for", "summarize", "to_markdown", "write_json"]

Medians = dict[str, float | None]
Summary = dict[str, Any]
# (medians per target, median kproxy/kubectl ratio, every row's summary) → met?
Check = Callable[[Medians, float | None, Summary], bool | None]
Round = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    scenario: str
    key: str
    label: str
    unit: str
    higher_better: bool
    target: str = ""
    check: Check | None = None
    # For a row computed from other measurements of the same round (a ratio to a
    # baseline) rather than read from one measurement: (round, target) → value.
    derive: Callable[[Round, str], float | None] | None = None

    @property
    def id(self) -> str:
        return f"{self.scenario}.{self.key}"

    def value(self, rnd: Round, target: str) -> float | None:
        if self.derive is not None:
            return self.derive(rnd, target)
        return _value(rnd, self.scenario, target, self.key)


def _ratio_at_least(limit: float) -> Check:
    return lambda _m, ratio, _s: None if ratio is None else ratio >= limit


def _kproxy_at_most(limit: float) -> Check:
    return lambda m, _r, _s: None if m.get("kproxy") is None else m["kproxy"] <= limit  # type: ignore[operator]


def _kproxy_at_least(limit: float) -> Check:
    return lambda m, _r, _s: None if m.get("kproxy") is None else m["kproxy"] >= limit  # type: ignore[operator]


def _no_worse_than_kubectl(_m: Medians, ratio: float | None, _s: Summary) -> bool | None:
    return None if ratio is None else ratio <= 1.0


def _observed_at_least(limit: float) -> Check:
    return lambda m, _r, _s: None if m.get(OBSERVED) is None else m[OBSERVED] >= limit  # type: ignore[operator]


def _observed_per_kproxy(scenario: str) -> Callable[[Round, str], float | None]:
    """kproxy-observed's small-GET req/s over plain kproxy's, in the same round."""

    def derive(rnd: Round, target: str) -> float | None:
        if target != OBSERVED:
            return None
        ours, plain = _value(rnd, scenario, OBSERVED, "rps"), _value(rnd, scenario, "kproxy", "rps")
        return ours / plain if ours is not None and plain else None

    return derive


def _kproxy_per_direct_tls(rnd: Round, target: str) -> float | None:
    """kproxy's list MB/s over direct-over-TLS's, in the same round."""
    if target != "kproxy":
        return None
    ours, baseline = _value(rnd, "list", "kproxy", "mb_s"), _value(rnd, "list_tls", "direct", "mb_s")
    return ours / baseline if ours is not None and baseline else None


def _list_check(_m: Medians, ratio: float | None, summary: Summary) -> bool | None:
    # "Within 10% of direct where the upstream allows": the upstream speaks TLS, so the
    # direct it allows is direct over TLS, not nginx's plain-HTTP sendfile.
    tls = (summary["list.kproxy_per_direct_tls"]["targets"].get("kproxy") or {}).get("median")
    parts = [None if ratio is None else ratio >= 1.2, None if tls is None else tls >= 0.95]
    if False in parts:
        return False
    return None if None in parts else True  # unmeasured half: no verdict either way


def _kproxy_within(factor: float, plus: float) -> Check:
    """kproxy's median at most ``factor`` × kubectl's + ``plus``."""

    def check(m: Medians, _r: float | None, _s: Summary) -> bool | None:
        ours, theirs = m.get("kproxy"), m.get("kubectl")
        return None if ours is None or theirs is None else ours <= factor * theirs + plus

    return check


def _startup_check(m: Medians, _r: float | None, _s: Summary) -> bool | None:
    # ≤ 0.15 s or 2× kubectl's, whichever is larger.
    ours, theirs = m.get("kproxy"), m.get("kubectl")
    if ours is None:
        return None
    return ours <= max(0.15, 2 * theirs if theirs is not None else 0.15)


def _get_metrics(connections: int) -> tuple[Metric, ...]:
    label = f"small GET, {connections} connection{'s' if connections > 1 else ''}"
    # The targets: ≥ 2.5× kubectl at 16 and 64 connections, ≥ 1.5× at one (a lone client
    # such as kubectl feels latency, not throughput); p99 no worse than kubectl's.
    targeted = connections in (16, 64)
    rps_target = "≥ 2.5× kubectl" if targeted else "≥ 1.5× kubectl" if connections == 1 else ""
    rps_check = _ratio_at_least(2.5) if targeted else _ratio_at_least(1.5) if connections == 1 else None
    return (
        Metric(f"get_c{connections}", "rps", label, "req/s", True, rps_target, rps_check),
        Metric(f"get_c{connections}", "p50_ms", label, "p50 ms", False),
        Metric(
            f"get_c{connections}",
            "p99_ms",
            label,
            "p99 ms",
            False,
            "≤ kubectl" if targeted else "",
            _no_worse_than_kubectl if targeted else None,
        ),
        Metric(f"get_c{connections}", "cpu_us_per_req", label, "CPU µs/req", False),
        Metric(
            f"get_c{connections}",
            "observed_per_kproxy",
            f"{label}, with metrics + JSON access log / without",
            "× per round",
            True,
            "≥ 0.9×" if targeted else "",
            _observed_at_least(0.9) if targeted else None,
            derive=_observed_per_kproxy(f"get_c{connections}"),
        ),
    )


_HTTPS = "small GET over HTTPS, 1 kept-alive connection (kproxy's TLS; kubectl behind stunnel)"
_HTTPS_FRONT = "small GET over HTTPS, kproxy behind the same stunnel"

_OTHER_METRICS: tuple[Metric, ...] = (
    Metric("get_https", "rps", _HTTPS, "req/s", True),
    Metric("get_https", "cpu_us_per_req", _HTTPS, "CPU µs/req (with stunnel's)", False),
    Metric("get_https_front", "rps", _HTTPS_FRONT, "req/s", True),
    Metric("get_https_front", "cpu_us_per_req", _HTTPS_FRONT, "CPU µs/req (with stunnel's)", False),
    Metric(
        "list", "mb_s", "10 MB list, 1 connection", "MB/s", True, "≥ 1.2× kubectl, ≥ 0.95× direct over TLS", _list_check
    ),
    Metric("list_tls", "mb_s", "10 MB list, 1 connection, direct over TLS (curl)", "MB/s", True),
    Metric(
        "list",
        "kproxy_per_direct_tls",
        "10 MB list, kproxy / direct over TLS",
        "× per round",
        True,
        "≥ 0.95×",
        _kproxy_at_least(0.95),
        derive=_kproxy_per_direct_tls,
    ),
    Metric("list", "cpu_ms_per_list", "10 MB list, 1 connection", "CPU ms/list", False),
    Metric("list_gzip", "lists_s", "10 MB list, gzip, 1 connection", "lists/s", True),
    Metric("list_gzip", "cpu_ms_per_list", "10 MB list, gzip, 1 connection", "CPU ms/list", False),
    Metric(
        "startup",
        "startup_s",
        "start-up to first response",
        "s",
        False,
        "≤ 0.15 s or 2× kubectl",
        _startup_check,
    ),
    Metric("startup", "idle_rss_mb", "RSS after start-up", "MB", False),
    Metric("memory", "peak_rss_mb", "peak RSS (request scenarios)", "MB", False),
    Metric("cold_burst", "rps", "cold burst, 64 connections", "req/s", True),
    Metric("cold_burst", "p50_ms", "cold burst, 64 connections", "p50 ms", False),
    Metric("cold_burst", "p99_ms", "cold burst, 64 connections", "p99 ms", False, "≤ kubectl", _no_worse_than_kubectl),
    Metric("cold_burst", "upstream_conns", "cold burst: upstream connections (handshakes)", "count", False),
    Metric(
        "cold_watch",
        "open_s",
        "cold: 250 watches at once, median of 3 fresh proxies",
        "s",
        False,
        "≤ 1.5× kubectl + 0.15 s",
        _kproxy_within(1.5, 0.15),
    ),
    Metric("cold_watch", "upstream_conns", "cold: 250 watches, upstream connections", "count", False),
    Metric("watch", "open_s", "watches: time to open all", "s", False, "≤ 1.5× kubectl", _kproxy_within(1.5, 0.0)),
    Metric("watch", "upstream_conns", "watches: new upstream connections", "count", False, "≤ 12", _kproxy_at_most(12)),
    Metric("watch", "rss_mb", "watches: RSS while held", "MB", False, "≤ 100 MB", _kproxy_at_most(100)),
    Metric("watch", "idle_cpu_pct", "watches: CPU while idle", "% of a core", False),
    Metric("watch", "event_p50_ms", "watches: event delay, one event", "p50 ms", False),
    Metric("watch", "event_p99_ms", "watches: event delay, one event", "p99 ms", False, "≤ 10 ms", _kproxy_at_most(10)),
    Metric("watch", "broadcast_last_ms", "watches: event to all, last arrival", "ms", False),
    Metric("watch_big", "open_s", "many watches: time to open all", "s", False),
    Metric("watch_big", "upstream_conns", "many watches: new upstream connections", "count", False),
    Metric("watch_big", "rss_mb", "many watches: RSS while held", "MB", False),
    Metric("watch_big", "event_p99_ms", "many watches: event delay, one event", "p99 ms", False),
    Metric("watch_big", "open_failures", "many watches: failed to open", "count", False, "0", _kproxy_at_most(0)),
    Metric("echo", "rtt_p50_ms", "upgrade echo, 64 B round trip", "p50 ms", False),
    Metric("echo", "rtt_p99_ms", "upgrade echo, 64 B round trip", "p99 ms", False),
    Metric("echo", "mb_s", "upgrade echo, bulk", "MB/s", True),
)


def metrics_for(connections: Sequence[int]) -> tuple[Metric, ...]:
    return tuple(m for c in connections for m in _get_metrics(c)) + _OTHER_METRICS


METRICS = metrics_for((1, 16, 64))


def _stats(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def _value(rnd: Round, scenario: str, target: str, key: str) -> float | None:
    for m in rnd["measurements"]:
        if m["scenario"] == scenario and m["target"] == target and not m["error"]:
            value = m["metrics"].get(key)
            return float(value) if isinstance(value, int | float) else None
    return None


def _mean(probes: list[dict[str, Any]], key: str) -> float | None:
    given = [p for p in probes if p.get(key) is not None]
    if not given:
        return None
    seconds = sum(p["seconds"] for p in given) or 1.0
    return round(float(sum(p[key] * p["seconds"] for p in given)) / seconds, 2)


def _round_noise(rnd: dict[str, Any]) -> dict[str, Any]:
    probes = [m["noise"] for m in rnd["measurements"] if m.get("noise")]
    summary = {key: _mean(probes, key) for key in ("other_cores", "steal_pct", "load_core_pct", "proxy_core_pct")}
    summary["other_cores_max"] = round(max((p["other_cores"] for p in probes), default=0.0), 3)
    summary["noisy_measurements"] = sum(1 for p in probes if p["noisy"])
    summary["measurements"] = len(probes)
    # The round as a whole, judged like one long measurement.
    summary["noisy"] = Noise(
        1.0,
        summary["other_cores"] or 0.0,
        summary["steal_pct"] or 0.0,
        summary["load_core_pct"],
        summary["proxy_core_pct"],
    ).noisy
    return summary


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    for rnd in rounds:
        rnd["noise"] = _round_noise(rnd)
    summary: Summary = {}
    metrics = metrics_for(result["config"]["connections"])
    for metric in metrics:
        per_target: dict[str, Any] = {}
        for target in result["targets"]:
            values = [v for rnd in rounds if (v := metric.value(rnd, target)) is not None]
            per_target[target] = _stats(values)
        ratios = []
        for rnd in rounds:
            ours, theirs = metric.value(rnd, "kproxy"), metric.value(rnd, "kubectl")
            if ours is not None and theirs:
                ratios.append(ours / theirs)
        summary[metric.id] = {
            "label": metric.label,
            "unit": metric.unit,
            "higher_better": metric.higher_better,
            "targets": per_target,
            "ratio_kproxy_kubectl": _stats(ratios),
            "target": metric.target or None,
            "met": None,
        }
    # Verdicts once every row is summarised: the list's draws on the direct-over-TLS row.
    for metric in metrics:
        entry = summary[metric.id]
        if metric.check is not None:
            medians: Medians = {t: (s["median"] if s else None) for t, s in entry["targets"].items()}
            ratio = entry["ratio_kproxy_kubectl"]
            entry["met"] = metric.check(medians, ratio["median"] if ratio else None, summary)
    result["summary"] = summary
    result["errors"] = [
        {"round": rnd["round"], "scenario": m["scenario"], "target": m["target"], "error": m["error"]}
        for rnd in rounds
        for m in rnd["measurements"]
        if m["error"]
    ]
    result["problems"] = [
        {"round": rnd["round"], "target": m["target"], "problems": m["metrics"].get("problems")}
        for rnd in rounds
        for m in rnd["measurements"]
        if m["scenario"] == "verify" and not m["error"] and not m["metrics"].get("ok")
    ]
    # Counts that should be zero: failed requests, watches that did not open, events
    # that never arrived, upstream streams a proxy left open after its clients left.
    for rnd in rounds:
        for m in rnd["measurements"]:
            for key in ("errors", "open_failures", "events_lost", "left_open"):
                value = m["metrics"].get(key)
                if isinstance(value, int) and value != 0:
                    result["problems"].append(
                        {"round": rnd["round"], "target": m["target"], "problems": f"{m['scenario']}: {key} = {value}"}
                    )
    return result


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


# -- Markdown -------------------------------------------------------------------------


def _num(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "—"
    if len(stats["values"]) == 1 or stats["min"] == stats["max"]:
        return _num(stats["median"])
    return f"{_num(stats['median'])} <sub>({_num(stats['min'])}–{_num(stats['max'])})</sub>"


def _ratio_cell(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "—"
    if len(stats["values"]) == 1:
        return f"{stats['median']:.2f}×"
    return f"**{stats['median']:.2f}×** <sub>({stats['min']:.2f}–{stats['max']:.2f})</sub>"


def to_markdown(result: dict[str, Any], command: str) -> str:
    names = {
        "direct": "direct (nginx)",
        "kubectl": "kubectl proxy",
        "kproxy": "kproxy",
        OBSERVED: "kproxy + metrics, JSON log",
    }
    targets = result["targets"]
    machine, versions = result["machine"], result["versions"]
    rounds = result["rounds"]
    noisy = [str(r["round"]) for r in rounds if r["noise"]["noisy"]]
    lines = [
        f"Command: `{command}` — {result['started']}, {len(rounds)} interleaved rounds"
        f" (noisy: {', '.join(noisy) if noisy else 'none'}).",
        "",
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB, Linux {machine['kernel']}. "
        f"Layout: {result.get('layout', '?')}.",
        "",
        "Versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"Payloads: pod {result['payloads']['pod_bytes']:,} B; list {result['payloads']['list_bytes']:,} B "
        f"({result['payloads']['list_gzip_bytes']:,} B gzip'ed). MB = 10⁶ bytes. "
        "Cells: median <sub>(min–max)</sub> over rounds; the ratio is kproxy/kubectl per round.",
        "",
    ]
    if "direct" in targets:
        lines += [
            "The direct 10 MB list is nginx's `sendfile` over plain HTTP, for reference; the baseline for "
            '"within 10% of direct" is *direct over TLS*: curl (HTTP/1.1, one kept-alive connection, on the '
            "load core) fetching the list from the TLS port the proxies use, with their client certificate. "
            "kproxy / direct over TLS is computed per round.",
            "",
        ]
    lines += [
        "| scenario | unit | " + " | ".join(names.get(t, t) for t in targets) + " | kproxy/kubectl | target |",
        "|---|---|" + "---:|" * len(targets) + "---:|---|",
    ]
    for metric in metrics_for(result["config"]["connections"]):
        entry = result["summary"][metric.id]
        if all(entry["targets"].get(t) is None for t in targets):
            continue
        verdict = {True: "✅ ", False: "❌ ", None: ""}[entry["met"]] + (entry["target"] or "")
        # A derived row's cells are ratios, shown like the kproxy/kubectl column.
        cell = _ratio_cell if metric.derive is not None else _cell
        cells = " | ".join(cell(entry["targets"].get(t)) for t in targets)
        better = "↑" if metric.higher_better else "↓"
        lines.append(
            f"| {metric.label} | {metric.unit} {better} | {cells} | "
            f"{_ratio_cell(entry['ratio_kproxy_kubectl'])} | {verdict} |"
        )
    conns = result["config"]["connections"]
    ratio_columns = [(f"get_c{c}", "rps") for c in conns] + [("list", "mb_s")]
    lines += [
        "",
        "Per round. Noise, as time-weighted means over the round's measurements: CPU used by other "
        "processes and kernel threads on the whole machine (cores), on the load core and on the proxy core "
        f"(% of that core), and steal. A round is noisy above {NOISY_CORE_PCT}% foreign use of either core "
        f"({NOISY_OTHER_CORES} cores machine-wide when not pinned) or {NOISY_STEAL_PCT}% steal.",
        "",
        "| round | order | other CPU, cores | load core % | proxy core % | steal % | noisy | "
        + " | ".join(f"c{c} req/s ratio" for c in conns)
        + " | list MB/s ratio | list kproxy/direct-TLS |",
        "|---|---|---|---|---|---|---|" + "---|" * (len(conns) + 2),
    ]

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    for rnd in rounds:
        n = rnd["noise"]
        ratios = []
        for scenario, key in ratio_columns:
            ours, theirs = _value(rnd, scenario, "kproxy", key), _value(rnd, scenario, "kubectl", key)
            ratios.append(f"{ours / theirs:.2f}×" if ours is not None and theirs else "—")
        tls = _kproxy_per_direct_tls(rnd, "kproxy")
        ratios.append("—" if tls is None else f"{tls:.2f}×")
        lines.append(
            f"| {rnd['round']} | {' → '.join(rnd['order'])} | {n['other_cores'] or 0:.2f} "
            f"(max {n['other_cores_max']:.2f}) | {pct(n['load_core_pct'])} | {pct(n['proxy_core_pct'])} | "
            f"{pct(n['steal_pct'])} | {'⚠️ yes' if n['noisy'] else 'no'} | " + " | ".join(ratios) + " |"
        )
    if result["errors"] or result["problems"]:
        lines += ["", "Errors:", ""]
        lines += [f"- round {e['round']} {e['scenario']} {e['target']}: {e['error']}" for e in result["errors"]]
        lines += [f"- round {p['round']} {p['target']}: {p['problems']}" for p in result["problems"]]
    return "\n".join(lines) + "\n"
