"""benchmarks.observed: plain kproxy against kproxy with metrics and the JSON access log,
in alternating slices, in the benchmark's environment."""

from __future__ import annotations

import re

import pytest

from tests.benchmarks.conftest import run_benchmark


def test_observed_tool_end_to_end(tools: None) -> None:
    done = run_benchmark("benchmarks.observed", "--pairs", "2", "--seconds", "1", "--connections", "4", timeout=180)
    out = done.stdout
    assert "small GET, 4 connections, 2 pair(s) of 1 s slices (worktree):" in out, out
    ratio = re.search(r"with metrics \+ JSON access log / without: (\d+\.\d+) over all pairs", out)
    assert ratio is not None and float(ratio.group(1)) > 0, out
    for side in ("plain kproxy", "kproxy-observed"):
        line = re.search(rf"{side}: ([\d,]+) req/s median; user (\d+\.\d) µs, system (\d+\.\d) µs per request", out)
        assert line is not None, out
        assert int(line.group(1).replace(",", "")) > 0 and float(line.group(2)) > 0


@pytest.mark.parametrize("flag", ["--pairs", "--seconds", "--connections"])
def test_observed_tool_refuses_nothing_to_measure(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.observed import main

    with pytest.raises(SystemExit) as exited:
        main([flag, "0"])
    assert exited.value.code == 2
    assert f"{flag} 0: at least 1" in capsys.readouterr().err
