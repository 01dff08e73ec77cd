"""The admin listener, metrics and health through the real kproxy process: /metrics scraped
over HTTP and parsed, /livez and /readyz (readiness flipping as the fake API server stops
and starts, and at a graceful stop), the authorized ranges on the admin port, and the
start-up errors of the new flags."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.integration.test_forwarding import curl
from tests.integration.test_process import kubectl, run_to_exit
from tests.waiting import until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAST = {"KPROXY_READINESS_PERIOD": "0.2"}
POD = "nginx-7c5ddbdf54-2xkqw"  # one of the fake's seeded pods


async def admin_url(kp: KproxyProcess) -> str:
    """The admin listener's URL, from kproxy's one notice line about it."""
    pattern = re.compile(r"serving metrics and health on (http://\S+) \(/metrics, /livez, /readyz\)")

    async def said() -> bool:
        return pattern.search(kp.stderr) is not None

    await until(said, lambda: f"the admin listener's notice in:\n{kp.stderr}", timeout=10, step=0.1)
    match = pattern.search(kp.stderr)
    assert match is not None
    return match[1]


async def get(url: str, source: str = "127.0.0.1", method: str = "GET") -> tuple[int, str, dict[str, str]]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.request(method, url) as answer:
        return answer.status, await answer.text(), dict(answer.headers)


async def scrape(base: str) -> Samples:
    status, text, headers = await get(f"{base}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def ready(base: str) -> tuple[int, str]:
    status, text, _ = await get(f"{base}/readyz")
    return status, text


async def test_metrics_count_what_kubectl_and_curl_do(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0")
    base = await admin_url(kp)
    server = ["--server", kp.url]
    code, _, err = await kubectl(tmp_path, *server, "get", "pods", "-n", "default")
    assert code == 0, err
    code, _, err = await kubectl(tmp_path, *server, "create", "configmap", "counted", "--from-literal=a=b")
    assert code == 0, err
    code, _, err = await kubectl(tmp_path, *server, "delete", "configmap", "counted")
    assert code == 0, err
    for _ in range(5):  # the same request again and again: the fast path answers most
        status, _ = await curl_status(f"{kp.url}/api/v1/namespaces/default/pods/{POD}")
        assert status == 200
    status, _ = await curl_status(f"{kp.url}/api/v1/namespaces/default/pods/{POD}/exec?command=ls", "-X", "POST")
    assert status == 403  # kubectl's default --reject-paths
    status, _ = await curl_status(f"{kp.url}/api/v1/namespaces/default/pods/nope")
    assert status == 404
    samples = await scrape(base)
    assert value(samples, "kproxy_requests_total", verb="list", code="200") >= 1
    assert value(samples, "kproxy_requests_total", verb="create", code="201") == 1
    assert value(samples, "kproxy_requests_total", verb="delete", code="200") == 1
    assert value(samples, "kproxy_requests_total", verb="get", code="200") >= 5
    assert value(samples, "kproxy_requests_total", verb="get", code="404") >= 1  # (kubectl delete waits too)
    assert value(samples, "kproxy_requests_total", verb="create", code="403") == 1  # refused, and counted
    assert value(samples, "kproxy_rejected_total", reason="filter") == 1
    for reason in ("ranges", "bad_request", "client_auth", "origin"):
        assert ("kproxy_rejected_total", frozenset({("reason", reason)})) in samples
    answered = sum(v for (name, _), v in samples.items() if name == "kproxy_requests_total")
    timed = sum(v for (name, _), v in samples.items() if name == "kproxy_request_duration_seconds_count")
    assert answered == timed  # nothing long-running here: every request is in the histogram
    buckets = [labels for (name, labels) in samples if name == "kproxy_request_duration_seconds_bucket"]
    assert {dict(b)["le"] for b in buckets} >= {"0.005", "60.0", "+Inf"}
    assert value(samples, "kproxy_build_info", version=kproxy_version()) == 1
    assert value(samples, "process_resident_memory_bytes") > 0 and value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "kproxy_upstream_connections") >= 1
    assert value(samples, "kproxy_inflight_requests") == 0
    # Label values come from fixed sets: no path, user or namespace anywhere.
    for name, labels in samples:
        for key, val in labels:
            assert "/" not in val and "default" not in val and "nginx" not in val, (name, key, val)
    assert not any(line.startswith("{") for line in kp.stderr_lines)  # no access log unless asked for


async def curl_status(url: str, *extra: str) -> tuple[int, str]:
    code, out, err = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", *extra, url)
    assert code == 0, err
    return int(out), out


def kproxy_version() -> str:
    from kproxy._version import __version__

    return __version__


async def test_watches_follows_and_upgrades_are_long_running(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0", "--reject-paths", ""
    )
    base = await admin_url(kp)
    env = kubectl_env(tmp_path)
    watch = await asyncio.create_subprocess_exec(
        "kubectl", "--server", kp.url, "get", "pods", "-n", "default", "--watch",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    follow = await asyncio.create_subprocess_exec(
        "kubectl", "--server", kp.url, "logs", "-f", "-n", "default", POD,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    exec_ = await asyncio.create_subprocess_exec(
        "kubectl", "--server", kp.url, "exec", "-i", "-n", "default", POD, "--", "cat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert exec_.stdin is not None and exec_.stdout is not None
        exec_.stdin.write(b"through the splice\n")
        await exec_.stdin.drain()
        assert await asyncio.wait_for(exec_.stdout.readline(), 30) == b"through the splice\n"

        async def all_running() -> bool:
            s = await scrape(base)
            return all(value(s, "kproxy_long_running", kind=k) == 1 for k in ("watch", "follow", "upgrade"))

        await until(all_running, "a watch, a follow and an upgrade in flight", timeout=30, step=0.1)
        samples = await scrape(base)
        assert value(samples, "kproxy_inflight_requests") >= 3
        assert value(samples, "kproxy_client_connections") >= 3
    finally:
        for proc in (watch, follow, exec_):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    async def none_running() -> bool:
        s = await scrape(base)
        return all(value(s, "kproxy_long_running", kind=k) == 0 for k in ("watch", "follow", "upgrade"))

    await until(none_running, "no long-running request in flight", timeout=10, step=0.1)
    samples = await scrape(base)
    assert value(samples, "kproxy_requests_total", verb="connect", code="101") == 1
    assert value(samples, "kproxy_requests_total", verb="watch", code="200") >= 1
    # Long-running requests are counted but kept out of the duration histogram.
    assert ("kproxy_request_duration_seconds_count", frozenset({("verb", "watch")})) not in samples
    assert ("kproxy_request_duration_seconds_count", frozenset({("verb", "connect")})) not in samples


async def test_health_endpoints(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "localhost:0", env=env_with(FAST)
    )  # fmt: skip
    base = await admin_url(kp)
    assert base.startswith("http://127.0.0.1:")
    status, text, headers = await get(f"{base}/livez")
    assert (status, text) == (200, "ok\n") and headers["Cache-Control"] == "no-cache, private"

    async def is_ready() -> bool:
        return (await ready(base))[0] == 200

    await until(is_ready, "/readyz 200", timeout=10, step=0.1)
    assert await ready(base) == (200, "ok\n")
    probes = [r for r in api.requests if r.path == "/readyz"]
    assert probes and probes[-1].user == "kproxy-token-user"  # kproxy's own credential
    assert probes[-1].headers.get("Audit-Id")
    status, _, _ = await get(f"{base}/livez", method="HEAD")
    assert status == 200
    status, text, headers = await get(f"{base}/metrics", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    status, text, _ = await get(f"{base}/api/v1/pods")
    assert (status, text) == (404, "404 page not found\n")  # never proxied
    before = len(api.requests)
    await get(f"{base}/api/v1/namespaces/default/secrets")
    assert all(r.path == "/readyz" for r in api.requests[before:])
    # The proxy port is unchanged: stdout had only kubectl's line (run_kproxy checked it).
    status, _ = await curl_status(f"{kp.url}/version")
    assert status == 200


def env_with(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


async def test_readiness_follows_the_api_server(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy
) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0", env=env_with(FAST)
    )  # fmt: skip
    base = await admin_url(kp)

    async def status_is(code: int) -> bool:
        return (await ready(base))[0] == code

    await until(lambda: status_is(200), "/readyz 200", timeout=10, step=0.1)
    await api.stop()
    await until(lambda: status_is(503), "/readyz 503", timeout=10, step=0.1)
    status, text = await ready(base)
    assert status == 503 and text.startswith("cannot reach the API server") and text.count("\n") == 1
    assert api.url.split("//")[1] in text  # names the server, one line
    await api.start()  # the same port again
    await until(lambda: status_is(200), "/readyz 200", timeout=10, step=0.1)
    assert "not ready: cannot reach the API server" in kp.stderr
    # /livez never minded.
    assert (await get(f"{base}/livez"))[0] == 200


async def test_readiness_needs_a_credential_the_api_server_takes(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    config = api.kubeconfig(tmp_path, auth="token", token="wrong-token")
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(config), "--metrics-address", "127.0.0.1:0", env=env_with(FAST)
    )  # fmt: skip
    base = await admin_url(kp)

    async def refused() -> bool:
        status, text = await ready(base)
        return status == 503 and "refused kproxy's credential (401)" in text

    await until(refused, "/readyz 503 for the refused credential", timeout=10, step=0.1)
    assert "wrong-token" not in kp.stderr and "wrong-token" not in (await ready(base))[1]


async def test_readiness_is_503_from_the_start_of_a_graceful_stop(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy
) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0", env=env_with(FAST)
    )  # fmt: skip
    base = await admin_url(kp)
    await until(lambda: _ready_is(base, 200), "/readyz 200", timeout=10, step=0.1)
    # A watch in flight keeps the drain going (up to the 5 s grace period).
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    kp.proc.send_signal(signal.SIGTERM)
    await until(lambda: _ready_is(base, 503), "/readyz 503 once the stop began", timeout=5, step=0.1)
    status, text = await ready(base)
    assert (status, text) == (503, "kproxy is shutting down\n")
    assert (await get(f"{base}/livez"))[0] == 200  # still serving while it drains
    writer.close()
    assert await kp.stop() == 0


async def _ready_is(base: str, code: int) -> bool:
    try:
        return (await ready(base))[0] == code
    except aiohttp.ClientError:
        return False


async def test_the_admin_port_is_guarded_by_the_authorized_ranges(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0",
        "--authorized-ip-ranges", "127.0.0.2/32",
    )  # fmt: skip
    base = await admin_url(kp)
    for path in ("/metrics", "/livez", "/readyz"):
        status, text, _ = await get(f"{base}{path}", source="127.0.0.3")
        assert (status, text) == (403, "403 Forbidden: client 127.0.0.3 is not in the authorized IP ranges\n")
    status, _, _ = await get(f"{base}/livez", source="127.0.0.2")
    assert status == 200
    samples = await scrape_from(base, "127.0.0.2")
    assert value(samples, "kproxy_rejected_total", reason="ranges") == 3


async def scrape_from(base: str, source: str) -> Samples:
    status, text, _ = await get(f"{base}/metrics", source=source)
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


async def test_bad_flags_exit_1_with_one_line_naming_the_flag(kubeconfig: Path, tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        code, out, err = await run_to_exit(
            "--kubeconfig", str(kubeconfig), "--port", "0", "--metrics-address", f"127.0.0.1:{port}"
        )
    finally:
        taken.close()
    assert (code, out) == (1, "")
    assert (
        err == f"error: --metrics-address 127.0.0.1:{port}: listen tcp 127.0.0.1:{port}: bind: address already in use\n"
    )
    for args, message in [
        (("--access-log", "xml"), "error: --access-log 'xml': use text or json\n"),
        (("--metrics-address", "9090"), "error: --metrics-address '9090': want HOST:PORT"),
        (
            ("--access-log", "json", "--access-log-file", str(tmp_path / "missing" / "a.log")),
            f"error: --access-log-file {tmp_path / 'missing' / 'a.log'}: cannot open it for writing: No such file",
        ),
        (
            ("--access-log", "json", "--access-log-file", str(tmp_path)),
            f"error: --access-log-file {tmp_path}: cannot open it for writing: Is a directory\n",
        ),
    ]:
        code, out, err = await run_to_exit("--kubeconfig", str(kubeconfig), "--port", "0", *args)
        assert (code, out) == (1, ""), err
        assert err.startswith(message) and err.count("\n") == 1, err


async def test_the_example_dashboard_and_alerts_use_metrics_kproxy_serves(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy
) -> None:
    import json

    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples" / "prometheus"
    dashboard = json.loads((examples / "grafana-dashboard.json").read_text())
    alerts = yaml.safe_load((examples / "kproxy-alerts.yml").read_text())
    config = yaml.safe_load((examples / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["kproxy-alerts.yml"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--metrics-address", "127.0.0.1:0")
    base = await admin_url(kp)
    await curl_status(f"{kp.url}/version")
    samples = await scrape(base)
    served = {name for name, _ in samples}
    labels = {key for _, pairs in samples for key, _ in pairs} | {"le", "job", "instance"}
    for expr in exprs:
        for name in re.findall(r"\b(kproxy_[a-z_]+|process_[a-z_]+)\b", expr):
            assert name in served, (name, expr)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= labels, (group, expr)
