"""The benchmark harness runs end to end with tiny sizes and writes outputs that parse.

No timing assertions: the numbers from a few-second run on a shared machine mean
nothing; this only proves the harness itself works (nginx with TLS and client
certificates, the upstream program, wrk, curl, stunnel, both proxies, the reports). Needs
Debian's ``nginx-light``, ``wrk``, ``curl`` and ``stunnel4`` (installed by the harness when running as
root) and, for the chart, matplotlib from PyPI (installed by the harness with pip on demand).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.benchmarks.conftest import run_benchmark

TINY = [
    "--rounds",
    "1",
    "--get-seconds",
    "1",
    "--list-seconds",
    "1",
    "--warmup-seconds",
    "0",
    "--connections",
    "4",
    "--list-pods",
    "100",
    "--watches",
    "20",
    "--watch-idle-seconds",
    "0.2",
    "--event-samples",
    "3",
    "--broadcasts",
    "1",
    "--echo-seconds",
    "0.2",
    "--big-watches",
    "40",
    "--burst-seconds",
    "1",
    "--cold-watches",
    "10",
    "--cold-runs",
    "2",
]


@pytest.mark.timeout(240)
def test_harness_end_to_end(tools: None, tmp_path: Path) -> None:
    out = tmp_path / "results"
    run_benchmark("benchmarks", *TINY, "--out", str(out), timeout=220)

    result = json.loads((out / "latest.json").read_text())
    targets = ["direct", "kproxy"] + (["kubectl"] if shutil.which("kubectl") else [])
    assert sorted(result["targets"]) == sorted([*targets, "kproxy-observed"])
    assert len(result["rounds"]) == 1
    measured = {(m["scenario"], m["target"]) for m in result["rounds"][0]["measurements"]}
    for scenario in ("verify", "get_c4", "list", "list_gzip", "echo", "watch", "watch_big"):
        for target in targets:
            assert (scenario, target) in measured, (scenario, target)
    for scenario in ("startup", "cold_burst", "cold_watch"):
        for target in targets:
            if target != "direct":
                assert (scenario, target) in measured, (scenario, target)
    for target in [*targets, "kproxy-observed"]:
        if target != "direct":
            assert ("startup", target) in measured
    # kproxy with metrics and the JSON access log on: the small GET only, and its share.
    observed = {scenario for scenario, target in measured if target == "kproxy-observed"}
    assert observed == {"startup", "get_c4"}
    share = result["summary"]["get_c4.observed_per_kproxy"]["targets"]["kproxy-observed"]
    assert share is not None and share["median"] > 0
    # The list's second baseline: curl over nginx's TLS port with the client certificate.
    assert ("list_tls", "direct") in measured
    # Small GET over HTTPS: kproxy's own TLS listener, and behind the stunnel front the
    # kubectl target is measured behind.
    for scenario, target in [("get_https", "kproxy"), ("get_https_front", "kproxy")] + (
        [("get_https", "kubectl")] if "kubectl" in targets else []
    ):
        assert (scenario, target) in measured
    (own,) = [m for m in result["rounds"][0]["measurements"] if (m["scenario"], m["target"]) == ("get_https", "kproxy")]
    assert own["error"] is None and own["metrics"]["requests"] > 0 and own["metrics"]["errors"] == 0, own
    # The harness's own path (nginx, upstream program, clients) must work without errors;
    # how the proxies fare is for their own tests, and recorded, not asserted, here.
    direct = [m for m in result["rounds"][0]["measurements"] if m["target"] == "direct"]
    assert all(m["error"] is None for m in direct), [m["error"] for m in direct]
    assert all(m["noise"] is None or set(m["noise"]) >= {"other_cores", "steal_pct", "noisy"} for m in direct)
    assert result["summary"]["get_c4.rps"]["targets"]["direct"]["median"] > 0
    (tls,) = [m["metrics"] for m in direct if m["scenario"] == "list_tls"]
    # Every list complete and the right size, all on one kept-alive connection.
    assert tls["requests"] >= 1 and tls["errors"] == 0 and tls["connections"] == 1, tls
    assert result["summary"]["list_tls.mb_s"]["targets"]["direct"]["median"] > 0
    kproxy_list = [m for m in result["rounds"][0]["measurements"] if (m["scenario"], m["target"]) == ("list", "kproxy")]
    if kproxy_list[0]["error"] is None:
        assert result["summary"]["list.kproxy_per_direct_tls"]["targets"]["kproxy"]["median"] > 0
    if "kubectl" in targets:
        assert "ratio_kproxy_kubectl" in result["summary"]["get_c4.rps"]
    # The cold scenarios counted what the proxies dialled, and the watch check has a row.
    for target in [t for t in targets if t != "direct"]:
        (burst,) = [
            m for m in result["rounds"][0]["measurements"] if (m["scenario"], m["target"]) == ("cold_burst", target)
        ]
        assert burst["error"] is not None or burst["metrics"]["upstream_conns"] >= 1, burst
    assert result["summary"]["cold_watch.open_s"]["target"] == "≤ 1.5× kubectl + 0.15 s"

    markdown = (out / "latest.md").read_text()
    assert "| scenario | unit |" in markdown and "direct (nginx)" in markdown
    assert "| 10 MB list, 1 connection, direct over TLS (curl) | MB/s ↑ |" in markdown
    assert "list kproxy/direct-TLS" in markdown
    assert (
        "| small GET over HTTPS, 1 kept-alive connection (kproxy's TLS; kubectl behind stunnel) | req/s ↑ |" in markdown
    )
    assert "| small GET, 4 connections, with metrics + JSON access log / without | × per round ↑ |" in markdown

    if result["chart"] is not None:
        assert (out / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # only acceptable when matplotlib could not be installed (offline machine)
        assert "matplotlib" in (result["chart_problem"] or ""), result["chart_problem"]


def test_list_target_needs_both_halves() -> None:
    from benchmarks.report import _list_check

    def summary(tls: float | None) -> dict[str, object]:
        stats = None if tls is None else {"median": tls}
        return {"list.kproxy_per_direct_tls": {"targets": {"kproxy": stats}}}

    assert _list_check({}, 1.5, summary(0.95)) is True
    assert _list_check({}, 1.5, summary(0.5)) is False  # fast against kubectl, far from direct over TLS
    assert _list_check({}, 1.1, summary(0.95)) is False
    assert _list_check({}, 1.5, summary(None)) is None  # no baseline measured: no verdict
    assert _list_check({}, 1.1, summary(None)) is False


@pytest.mark.parametrize(
    ("rotation", "round_number", "expected"),
    [
        # Observed after plain kproxy in odd rounds, before it in even ones, wherever the
        # rotation put either.
        ("direct kubectl kproxy kproxy-observed", 1, "direct kubectl kproxy kproxy-observed"),
        ("kubectl kproxy kproxy-observed direct", 2, "kubectl kproxy-observed kproxy direct"),
        ("kproxy kproxy-observed direct kubectl", 3, "kproxy kproxy-observed direct kubectl"),
        ("kproxy-observed direct kubectl kproxy", 4, "direct kubectl kproxy-observed kproxy"),
        ("kproxy-observed direct kubectl kproxy", 5, "direct kubectl kproxy kproxy-observed"),
        ("kubectl kproxy direct", 2, "kubectl kproxy direct"),  # nothing to pair
        ("kproxy-observed direct", 1, "kproxy-observed direct"),  # no plain kproxy: as rotated
    ],
)
def test_the_observed_pair_runs_back_to_back(rotation: str, round_number: int, expected: str) -> None:
    from benchmarks.runner import _get_order
    from benchmarks.targets import Target

    targets = [Target(name, port) for port, name in enumerate(rotation.split())]
    assert " ".join(t.name for t in _get_order(targets, round_number)) == expected


def test_wrk_output_parses() -> None:
    from benchmarks.wrk import parse_wrk

    text = """Running 4s test @ http://127.0.0.1:1/x
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.45ms  310.00us  12.00ms   90.00%
    Req/Sec    44.67k     1.20k   46.00k    80.00%
  Latency Distribution
     50%  840.00us
     75%    1.50ms
     90%    2.00ms
     99%    1.20s
  178680 requests in 4.00s, 480.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  44668.80
Transfer/sec:    120.00MB
"""
    result = parse_wrk(text)
    assert result.requests == 178680
    assert result.rps == pytest.approx(44668.8)
    assert result.p50_ms == pytest.approx(0.84)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.bytes_read == pytest.approx(480 * 1024**2)
    assert result.errors == 7
