"""The soak's figures and verdicts from its samples: pure functions, no I/O but the writers.

In: the samples (one row per proxy per reading: ``t`` seconds since the load started,
negative for the reading after start-up; ``phase`` ``start``, ``load`` or ``settle``;
RSS in MiB, open descriptors, threads, CPU seconds, and the load client's counters),
the run's settings and each proxy's peak RSS (VmHWM). Out: per proxy, start, peak,
end-of-run and after-close RSS; growth over the second half of the load (a least-squares
line through its samples, so one reading taken during a burst does not decide it; the
plain end-minus-middle difference is shown beside it) and that slope per hour;
descriptors and threads at start, peak and after close; what load was achieved; and the
verdicts of the issue: RSS grows at most ``growth_limit_mib`` over the second half, and
descriptors come back to their start-up count (plus ``fd_slack``) once the clients left.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CSV_FIELDS", "fitted_slope", "summarize", "to_markdown", "write_csv", "write_json"]

Row = dict[str, Any]

# The columns of the CSV, in order; a row lacks the client's counters before the load.
CSV_FIELDS = (
    "target",
    "phase",
    "t",
    "rss_mib",
    "fds",
    "threads",
    "cpu_s",
    "watches_open",
    "pending_opens",
    "replaced",
    "watches_lost",
    "watch_open_failures",
    "gets",
    "get_errors",
    "slow_started",
    "slow_bytes",
    "events_sent",
    "events_received",
    "lag_max_ms",
)
_NAMES = {"kproxy": "kproxy", "kubectl": "kubectl proxy"}


def fitted_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(x, y)`` points; None for fewer than 3 or no spread in x."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def _target(rows: list[Row], settings: Row, hwm_mib: float | None) -> Row:
    start = next((r for r in rows if r["phase"] == "start"), None)
    load = [r for r in rows if r["phase"] == "load"]
    settle = [r for r in rows if r["phase"] == "settle"]
    seconds = float(settings["load_seconds"])
    half = [r for r in load if r["t"] >= seconds / 2]
    slope = fitted_slope([(r["t"], r["rss_mib"]) for r in half])
    span = half[-1]["t"] - half[0]["t"] if len(half) >= 2 else 0.0
    growth = None if slope is None else slope * span
    after = settle[-1] if settle else None
    samples = [r for r in rows if r["phase"] in ("start", "load", "settle")]
    final = load[-1] if load else {}
    out: Row = {
        "rss_start_mib": start and start["rss_mib"],
        "rss_peak_mib": max([r["rss_mib"] for r in samples] + ([hwm_mib] if hwm_mib else []), default=None),
        "rss_end_mib": load[-1]["rss_mib"] if load else None,
        "rss_after_close_mib": after and after["rss_mib"],
        "rss_growth_second_half_mib": None if growth is None else round(growth, 2),
        "rss_end_minus_middle_mib": round(half[-1]["rss_mib"] - half[0]["rss_mib"], 2) if len(half) >= 2 else None,
        "rss_growth_per_hour_mib": None if slope is None else round(slope * 3600, 1),
        "second_half_samples": len(half),
        "fds_start": start and start["fds"],
        "fds_peak": max((r["fds"] for r in samples), default=None),
        "fds_after_close": after and after["fds"],
        "fds_back_after_s": after and round(after["t"] - (load[-1]["t"] if load else 0.0), 1),
        "threads_start": start and start["threads"],
        "threads_peak": max((r["threads"] for r in samples), default=None),
        "threads_after_close": after and after["threads"],
        "cpu_s": round(load[-1]["cpu_s"] - start["cpu_s"], 1) if load and start else None,
        "watches_open_min": min((r.get("watches_open", 0) for r in half), default=None),
        "watches_open_max": max((r.get("watches_open", 0) for r in half), default=None),
        "churn_target_per_s": settings["churn"],
        "churn_achieved_per_s": round(final.get("replaced", 0) / seconds, 2) if seconds else None,
        "client_lag_max_ms": max((r.get("lag_max_ms", 0.0) for r in load), default=None),
    }
    for key in ("watches_opened", "watch_open_failures", "watches_lost", "churn_behind", "gets", "get_errors"):
        out[key] = final.get(key)
    for key in ("gets_skipped", "slow_started", "slow_completed", "slow_left", "slow_errors", "slow_bytes"):
        out[key] = final.get(key)
    for key in ("events_sent", "events_received", "last_error"):
        out[key] = final.get(key)
    out.update(_verdicts(out, settings))
    return out


def _verdicts(out: Row, settings: Row) -> Row:
    growth = out["rss_growth_second_half_mib"]
    rss_ok = None if growth is None else growth <= settings["growth_limit_mib"]
    fds_ok = None
    if out["fds_start"] is not None and out["fds_after_close"] is not None:
        fds_ok = out["fds_after_close"] <= out["fds_start"] + settings["fd_slack"]
    # The verdict means something only if the load it was measured under happened.
    shortfalls = []
    if out["churn_achieved_per_s"] is not None and out["churn_achieved_per_s"] < 0.9 * settings["churn"]:
        shortfalls.append(f"churn {out['churn_achieved_per_s']}/s of {settings['churn']}/s")
    if out["watches_open_min"] is not None and out["watches_open_min"] < 0.95 * settings["watches"]:
        shortfalls.append(f"as few as {out['watches_open_min']} of {settings['watches']} watches open")
    if rss_ok is False or fds_ok is False:
        verdict = "fail"
    elif rss_ok is None or fds_ok is None or shortfalls:
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return {"rss_levels_off": rss_ok, "fds_back": fds_ok, "load_shortfalls": shortfalls, "verdict": verdict}


def summarize(
    samples: list[Row], settings: Row, hwm_mib: dict[str, float | None], exits: dict[str, str] | None = None
) -> dict[str, Row]:
    """Per proxy (in the order first seen), the figures and verdicts described above.

    A proxy in ``exits`` ended during the run (why is the value): it fails.
    """
    targets = list(dict.fromkeys(r["target"] for r in samples))
    out = {t: _target([r for r in samples if r["target"] == t], settings, hwm_mib.get(t)) for t in targets}
    for target, why in (exits or {}).items():
        if target in out:
            out[target].update(verdict="fail", exited=why)
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✅ yes" if value else "❌ no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _slash(s: Row, *keys: str) -> str:
    return " / ".join(_fmt(s[k]) for k in keys)


def _rows(s: Row, settings: Row) -> list[tuple[str, str]]:
    verdict = f"**{s['verdict']}**"
    if s.get("exited"):
        verdict += f" (the proxy {s['exited'][:200]})"
    elif s["load_shortfalls"]:
        verdict += f" (load short: {'; '.join(s['load_shortfalls'])})"
    return [
        ("RSS at start (MiB)", _fmt(s["rss_start_mib"])),
        ("RSS peak (MiB, VmHWM)", _fmt(s["rss_peak_mib"])),
        ("RSS at end of load (MiB)", _fmt(s["rss_end_mib"])),
        ("RSS after close (MiB)", _fmt(s["rss_after_close_mib"])),
        ("RSS growth over 2nd half (MiB, fitted)", _fmt(s["rss_growth_second_half_mib"], 2)),
        ("… end minus middle (MiB)", _fmt(s["rss_end_minus_middle_mib"], 2)),
        ("RSS growth extrapolated (MiB/hour)", _fmt(s["rss_growth_per_hour_mib"])),
        ("descriptors: start / peak / after close", _slash(s, "fds_start", "fds_peak", "fds_after_close")),
        ("… after close, seconds after the load", _fmt(s["fds_back_after_s"])),
        ("threads: start / peak / after close", _slash(s, "threads_start", "threads_peak", "threads_after_close")),
        ("CPU over the load (s)", _fmt(s["cpu_s"])),
        ("watches open in 2nd half (min–max)", f"{_fmt(s['watches_open_min'])}–{_fmt(s['watches_open_max'])}"),
        ("watches opened / failed / lost", _slash(s, "watches_opened", "watch_open_failures", "watches_lost")),
        ("churn achieved / target (per s)", f"{_fmt(s['churn_achieved_per_s'], 2)} / {settings['churn']:.2f}"),
        ("small GETs (errors)", f"{_fmt(s['gets'])} ({_fmt(s['get_errors'])})"),
        ("slow readers: to the end / left early / errors", _slash(s, "slow_completed", "slow_left", "slow_errors")),
        ("slow readers: MB read", _fmt((s["slow_bytes"] or 0) / 1e6)),
        ("events sent / received", _slash(s, "events_sent", "events_received")),
        ("load client's loop lag, max (ms)", _fmt(s["client_lag_max_ms"])),
        (f"RSS levels off (≤ {settings['growth_limit_mib']:g} MiB over 2nd half)", _fmt(s["rss_levels_off"])),
        (f"descriptors back after close (≤ start + {settings['fd_slack']})", _fmt(s["fds_back"])),
        ("**verdict**", verdict),
    ]


def to_markdown(result: Row) -> str:
    settings, summary = result["settings"], result["summary"]
    names = list(summary)
    lines = [
        f"## Soak — {result['started']}",
        "",
        f"Command: `{result['command']}`. Per proxy, side by side against the same upstream ({result['upstream']}): "
        f"{settings['watches']:,} watches, {settings['churn']} replaced a second, {settings['events_per_second']} "
        f"events a second, {settings['gets_per_second']} small GETs a second, {settings['slow_clients']} slow "
        f"readers of the {result['list_bytes'] / 1e6:.1f} MB list at {settings['slow_kib_per_second']} KiB/s, for "
        f"{settings['load_seconds'] / 60:.1f} min; a reading every {settings['interval']} s.",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}. Layout: {result['layout']}. "
        f"Descriptor limits: {', '.join(f'{k} {v}' for k, v in result.get('proxy_fd_limits', {}).items())}.",
        "",
        "| | " + " | ".join(_NAMES.get(n, n) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    table = [_rows(summary[n], settings) for n in names]
    for i, (label, _) in enumerate(table[0]):
        lines.append(f"| {label} | " + " | ".join(rows[i][1] for rows in table) + " |")
    lines += [
        "",
        "Threads are what /proc shows (`Threads:`): kproxy's asyncio tasks are not visible from outside "
        "(a metrics endpoint would show them), kubectl's goroutines neither. MiB = 2^20 bytes; MB = 10^6.",
    ]
    for name in names:
        if summary[name]["last_error"]:
            lines.append(
                f"\nLast error seen by the load client of {_NAMES.get(name, name)}: `{summary[name]['last_error']}`"
            )
    return "\n".join(lines) + "\n"


def write_csv(samples: list[Row], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(samples)


def write_json(result: Row, path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
