"""``python -m benchmarks soak``: runs end to end with tiny sizes; the figures and verdicts.

No timing or memory assertions: a run of seconds on a shared machine says nothing about
leaks; the end-to-end test proves the soak itself works (the upstream, both proxies, one
load client per proxy, readings, settle, reports, chart) and that its outputs have the
promised shape. The verdict logic is checked on made-up samples. Needs what the benchmark harness
needs (``nginx-light``, ``wrk``, ``curl``; installed by the harness as root, otherwise the
end-to-end test is skipped).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.soak import main
from benchmarks.soak_report import CSV_FIELDS, fitted_slope, summarize, to_markdown
from tests.benchmarks.conftest import run_benchmark

TINY = [
    "--minutes", "0.25",
    "--watches", "30",
    "--churn", "5",
    "--events-per-second", "10",
    "--gets-per-second", "5",
    "--slow-clients", "2",
    "--slow-kib-per-second", "256",
    "--list-pods", "100",
    "--interval", "1",
    "--settle", "10",
]  # fmt: skip


@pytest.mark.timeout(240)
def test_soak_end_to_end(tools: None, tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = run_benchmark("benchmarks", "soak", *TINY, "--out", str(out), timeout=220)
    targets = ["kproxy"] + (["kubectl"] if shutil.which("kubectl") else [])

    result = json.loads((out / "soak-latest.json").read_text())
    assert list(result["summary"]) == targets
    assert result["settings"]["watches"] == 30 and result["settings"]["load_seconds"] == 15
    for target in targets:
        rows = [r for r in result["samples"] if r["target"] == target]
        assert [r["phase"] for r in rows][0] == "start"
        assert {r["phase"] for r in rows} == {"start", "load", "settle"}
        assert all(r["rss_mib"] > 0 and r["fds"] > 0 and r["threads"] >= 1 for r in rows)
        summary = result["summary"][target]
        assert summary["verdict"] in ("pass", "fail", "inconclusive")
        for key in ("rss_start_mib", "rss_peak_mib", "rss_end_mib", "rss_after_close_mib", "fds_start", "fds_peak"):
            assert summary[key] > 0, key
        assert summary["second_half_samples"] >= 3
        assert isinstance(summary["rss_growth_second_half_mib"], float)
        assert isinstance(summary["rss_growth_per_hour_mib"], float)
        assert summary["fds_after_close"] is not None and summary["rss_levels_off"] is not None
        # The load happened: the harness's own path works (how the proxies fare is recorded).
        assert summary["watches_opened"] >= 30 and summary["gets"] > 0 and summary["slow_started"] > 0
        assert summary["events_sent"] > 0 and summary["churn_achieved_per_s"] > 0
        assert result["proxy_fd_limits"][target]

    with (out / "soak-latest.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == CSV_FIELDS
    assert len(table) == len(result["samples"])

    if result["chart"] is not None:
        assert (out / "soak-latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # only acceptable when matplotlib could not be installed (offline machine)
        assert "matplotlib" in (result["chart_problem"] or ""), result["chart_problem"]

    markdown = (out / "soak-latest.md").read_text()
    assert "| | kproxy |" in markdown and "| **verdict** |" in markdown
    assert "| RSS growth extrapolated (MiB/hour) |" in markdown
    assert markdown in done.stdout


def test_bad_values_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, flag in ((["--minutes", "0"], "--minutes"), (["--targets", "kproxy,nginx"], "--targets")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert str(exc.value).startswith(f"error: {flag}: "), exc.value


@pytest.mark.parametrize(
    ("points", "slope"),
    [
        ([(0, 1), (1, 2), (2, 3)], 1.0),
        ([(0, 5), (10, 5), (20, 5)], 0.0),
        ([(0, 0), (1, 2), (2, 0), (3, 2)], 0.4),
        ([(0, 1), (1, 2)], None),  # too few
        ([(1, 1), (1, 2), (1, 3)], None),  # no spread in time
    ],
)
def test_fitted_slope(points: list[tuple[float, float]], slope: float | None) -> None:
    got = fitted_slope(points)
    assert got == (None if slope is None else pytest.approx(slope))


SETTINGS: dict[str, Any] = {
    "watches": 100,
    "churn": 10.0,
    "events_per_second": 0,
    "gets_per_second": 1.0,
    "slow_clients": 0,
    "slow_kib_per_second": 1.0,
    "load_seconds": 100.0,
    "interval": 10.0,
    "settle": 30.0,
    "fd_slack": 2,
    "growth_limit_mib": 10.0,
    "list_pods": 1,
}


def samples(rss_per_s: float, fds_after: int, open_watches: int = 100, replaced: int = 1000) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"target": "kproxy", "phase": "start", "t": -1.0, "rss_mib": 40.0, "fds": 20, "threads": 1, "cpu_s": 1.0}
    ]
    for t in range(10, 101, 10):
        rows.append(
            {
                "target": "kproxy",
                "phase": "load",
                "t": float(t),
                "rss_mib": 60.0 + rss_per_s * t,
                "fds": 230,
                "threads": 1,
                "cpu_s": 1.0 + t / 10,
                "watches_open": open_watches,
                "replaced": replaced * t // 100,
                "gets": t,
                "get_errors": 0,
            }
        )
    rows.append({"target": "kproxy", "phase": "settle", "t": 103.0, "rss_mib": 61.0, "fds": fds_after, "threads": 1})
    return rows


@pytest.mark.parametrize(
    ("rows", "verdict", "rss_ok", "fds_ok"),
    [
        (samples(0.0, 20), "pass", True, True),
        (samples(0.0, 22), "pass", True, True),  # within the slack
        (samples(0.25, 20), "fail", False, True),  # 12.5 MiB over the second half
        (samples(0.0, 40), "fail", True, False),  # descriptors kept
        (samples(0.0, 20, open_watches=50), "inconclusive", True, True),  # the load did not happen
        (samples(0.0, 20, replaced=500), "inconclusive", True, True),  # churn at half the rate
    ],
)
def test_verdicts(rows: list[dict[str, Any]], verdict: str, rss_ok: bool, fds_ok: bool) -> None:
    summary = summarize(rows, SETTINGS, {"kproxy": 70.0})["kproxy"]
    assert (summary["verdict"], summary["rss_levels_off"], summary["fds_back"]) == (verdict, rss_ok, fds_ok)
    assert summary["rss_start_mib"] == 40.0 and summary["rss_peak_mib"] >= 70.0
    assert summary["fds_start"] == 20 and summary["fds_peak"] == 230


def test_growth_figures() -> None:
    summary = summarize(samples(0.1, 20), SETTINGS, {})["kproxy"]
    # Second half: t = 50..100, 0.1 MiB/s → 5 MiB over 50 s, 360 MiB an hour.
    assert summary["rss_growth_second_half_mib"] == pytest.approx(5.0)
    assert summary["rss_end_minus_middle_mib"] == pytest.approx(5.0)
    assert summary["rss_growth_per_hour_mib"] == pytest.approx(360.0)
    assert summary["second_half_samples"] == 6
    assert summary["churn_achieved_per_s"] == pytest.approx(10.0)
    assert summary["cpu_s"] == pytest.approx(10.0)
    assert summary["fds_back_after_s"] == pytest.approx(3.0)


def test_markdown_has_a_column_per_proxy() -> None:
    rows = samples(0.0, 20) + [dict(r, target="kubectl") for r in samples(0.5, 40)]
    result = {
        "started": "now",
        "command": "python -m benchmarks soak",
        "upstream": "nginx",
        "list_bytes": 10**7,
        "versions": {"kubectl": "v1.32"},
        "layout": "pinned",
        "proxy_fd_limits": {"kproxy": "20000 (hard 20000)"},
        "settings": SETTINGS,
        "summary": summarize(rows, SETTINGS, {}),
    }
    text = to_markdown(result)
    assert "| | kproxy | kubectl proxy |" in text
    assert "| **verdict** | **pass** | **fail** |" in text
    assert "| descriptors: start / peak / after close | 20 / 230 / 20 | 20 / 230 / 40 |" in text


def test_a_proxy_that_exited_fails() -> None:
    exits = {"kproxy": "exited with -9 at t=50 s: Killed"}
    summary = summarize(samples(0.0, 20), SETTINGS, {}, exits)["kproxy"]
    assert summary["verdict"] == "fail" and summary["exited"] == exits["kproxy"]
