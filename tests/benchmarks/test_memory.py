"""``python -m benchmarks.memory`` runs end to end with tiny sizes and reports figures
for both proxies.

No memory bound is asserted here: a few clients on a shared machine say nothing about
RSS (the bound is pinned by tests/integration/test_memory.py through the real process);
this proves the scenario itself works: the answer served through both proxies, every
client answered, the figures written. Needs Debian's ``nginx-light`` (installed by the
harness when running as root) and kubectl for the second proxy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmarks.conftest import run_benchmark

TINY = ["--clients", "3", "--answer-mib", "1", "--hold-seconds", "0.5", "--settle-seconds", "0.5"]


@pytest.mark.timeout(180)
def test_memory_scenario_end_to_end(tools: None, tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    done = run_benchmark("benchmarks.memory", *TINY, "--json", str(out), timeout=170)
    record = json.loads(out.read_text())
    proxies = ["kubectl", "kproxy"] if shutil.which("kubectl") else ["kproxy"]
    assert [f["proxy"] for f in record["figures"]] == proxies
    for figures in record["figures"]:
        assert figures["clients_answered"] == 3, figures
        assert 0 < figures["start_mib"] <= figures["peak_mib"], figures
        assert figures["after_mib"] > 0 and figures["read_mib"] > 0, figures
    assert record["settings"]["clients"] == 3
    for proxy in proxies:
        assert f"| {proxy} | " in done.stdout
    assert "RSS start" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "0"], "argument --clients: '0' must be greater than 0"),
        (["--read-interval", "soon"], "argument --read-interval: 'soon' is not a number"),
        (["--targets", "kproxy,nginx"], "error: --targets: nginx: use kubectl, kproxy or both"),
    ],
)
def test_bad_arguments_are_named(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.memory import main

    code: object
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code  # argparse's own refusal
    assert code in (1, 2)
    assert message in capsys.readouterr().err
