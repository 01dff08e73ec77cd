"""What the benchmark tests share: the tools the harness needs, and running one of its
commands as a user would (``python -m benchmarks ...`` from the repository root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tools() -> None:
    from benchmarks.deps import MissingTool, ensure_tools

    try:
        ensure_tools(log=False)
    except MissingTool as exc:
        pytest.skip(f"benchmark tools unavailable: {exc}")


def run_benchmark(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` with this checkout's kproxy and benchmarks; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
