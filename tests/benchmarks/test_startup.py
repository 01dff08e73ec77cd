"""benchmarks.startup: cold starts of the worktree's kproxy in the benchmark's environment."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.benchmarks.conftest import run_benchmark


def test_startup_tool_end_to_end(tools: None) -> None:
    done = run_benchmark("benchmarks.startup", "--runs", "2", timeout=180)
    line = re.search(r"worktree: (\d+\.\d+) s median \((\d+\.\d+)–(\d+\.\d+), 2 starts\)", done.stdout)
    assert line is not None, done.stdout
    median, low, high = map(float, line.groups())
    assert 0 < low <= median <= high
    if shutil.which("kubectl"):
        assert "kubectl proxy:" in done.stdout and "× kubectl; target" in done.stdout


def test_startup_tool_refuses_no_runs() -> None:
    from benchmarks.startup import main

    with pytest.raises(SystemExit) as exited:
        main(["--runs", "0"])
    assert exited.value.code == 2
