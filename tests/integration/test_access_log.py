"""The access log through the real kproxy process: JSON lines parsed, one per request, every
field present, the Audit-ID the fake API server saw, targets, refusals, watches the client
leaves, cut-offs at a graceful stop; the text format; reopening the file on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.test_forwarding import curl
from tests.integration.test_process import kubectl
from tests.waiting import until

FIELDS = [
    "time", "client", "method", "path", "verb", "status", "bytes_in", "bytes_out", "duration_ms",
    "audit_id", "user", "target", "termination",
]  # fmt: skip
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
DURATION = re.compile(r'"duration_ms":\d+\.\d{3},')


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.exists() else ""
    assert text == "" or text.endswith("\n")
    # Written alike by the fast path and the ordinary one: milliseconds, three decimals.
    assert all(DURATION.search(line) for line in text.splitlines()), text
    parsed = [json.loads(line) for line in text.splitlines()]
    for entry in parsed:
        assert list(entry) == FIELDS  # every field, in order, on every line
        assert TIME.fullmatch(entry["time"]) and entry["duration_ms"] >= 0
    return parsed


async def logged(path: Path, count: int) -> list[dict[str, Any]]:
    await until(lambda: len(lines(path)) >= count, lambda: f"{count} lines in: {lines(path)}", timeout=10, step=0.1)
    return lines(path)


async def json_kproxy(start_kproxy: StartKproxy, kubeconfig: Path, log: Path, *extra: str) -> KproxyProcess:
    return await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--access-log", "json", "--access-log-file", str(log), *extra
    )  # fmt: skip


async def test_json_lines_join_the_api_servers_audit_ids(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kp = await json_kproxy(start_kproxy, kubeconfig, log)
    code, _, err = await kubectl(tmp_path, "--server", kp.url, "get", "configmaps", "-n", "default")
    assert code == 0, err
    async with aiohttp.ClientSession() as session:
        for _ in range(4):  # one connection, the same request: the fast path takes the repeats
            async with session.get(f"{kp.url}/api/v1/namespaces/default/configmaps/demo-config?token=s3cret") as r:
                assert r.status == 200
                await r.read()
        async with session.get(f"{kp.url}/version", headers={"Audit-ID": "my-own-id"}) as r:
            assert r.status == 200
    assert api.requests[-1].headers.getall("Audit-Id") == ["my-own-id"]  # passed on, nothing added

    async def all_logged() -> bool:  # kubectl's discovery may come first: wait for the last one
        return any(e["audit_id"] == "my-own-id" for e in lines(log))

    await until(all_logged, lambda: lines(log), timeout=10, step=0.1)
    entries = lines(log)
    kubectl_get, *gets, own = entries[-6:]
    assert kubectl_get["verb"] == "list" and kubectl_get["method"] == "GET" and kubectl_get["status"] == 200
    assert [g["path"] for g in gets] == ["/api/v1/namespaces/default/configmaps/demo-config"] * 4  # no query
    assert all(g["verb"] == "get" and g["termination"] == "complete" and g["bytes_out"] > 0 for g in gets)
    assert all(e["client"] == "127.0.0.1" and e["user"] is None and e["target"] is None for e in entries)
    assert (own["audit_id"], own["verb"], own["path"]) == ("my-own-id", "get", "/version")
    # Each request has an id of its own, the one the API server got: one id finds it in both logs.
    seen = {r.headers.get("Audit-Id") for r in api.requests}
    ids = [e["audit_id"] for e in [kubectl_get, *gets]]
    assert len(set(ids)) == 5 and all(i in seen and uuid.UUID(i).version == 4 for i in ids)
    assert "s3cret" not in log.read_text() and "s3cret" not in kp.stderr


async def test_refusals_errors_and_targets(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kp = await json_kproxy(start_kproxy, kubeconfig, log)
    status = await status_of(f"{kp.url}/api/v1/namespaces/default/pods/p/exec?command=sh", "-X", "POST")
    assert status == 403
    status = await status_of(f"{kp.url}/debug/kproxy/hangup")
    assert status == 502
    status = await status_of(f"{kp.url}/api/v1/namespaces/default/services/https:web:443/proxy/x")
    assert status in (502, 503, 404)  # no backend: what matters is the target in the log
    status = await status_of(f"{kp.url}/nope/../api", "--path-as-is")
    assert status == 301
    refused, hangup, proxied, redirected = (await logged(log, 4))[-4:]
    assert (refused["status"], refused["verb"], refused["audit_id"]) == (403, "create", None)  # never sent
    assert (hangup["status"], hangup["termination"]) == (502, "upstream_reset")
    assert hangup["audit_id"] is not None
    assert (proxied["verb"], proxied["target"]) == ("proxy", "service default/https:web:443")
    assert (redirected["status"], redirected["verb"], redirected["audit_id"]) == (301, "get", None)


async def status_of(url: str, *extra: str) -> int:
    code, out, err = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", *extra, url)
    assert code == 0, err
    return int(out)


async def test_a_watch_is_logged_when_it_ends(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kp = await json_kproxy(start_kproxy, kubeconfig, log)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    await until(lambda: api.open_watches() == 1, "the watch on the API server", timeout=5.0, step=0.1)
    await asyncio.sleep(0.3)
    assert lines(log) == []  # written when the request ends, not before
    writer.close()
    (entry,) = await logged(log, 1)
    assert (entry["verb"], entry["status"], entry["termination"]) == ("watch", 200, "client_gone")
    assert entry["bytes_out"] > 0 and entry["duration_ms"] >= 300


async def test_a_request_cut_by_a_graceful_stop_is_a_timeout(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kp = await json_kproxy(start_kproxy, kubeconfig, log)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    assert await kp.stop() == 0  # SIGTERM: the watch is cut after the 5 s grace period
    (entry,) = lines(log)
    assert (entry["verb"], entry["termination"]) == ("watch", "timeout")
    writer.close()


async def test_the_text_format_and_reopening_on_sighup(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--access-log", "text", "--access-log-file", str(log)
    )  # fmt: skip
    assert await status_of(f"{kp.url}/version?token=s3cret") == 200

    await until(lambda: log.exists() and "GET /version 200" in log.read_text(), "the log line", timeout=5.0, step=0.1)
    (line,) = log.read_text().splitlines()
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ kproxy\] 127\.0\.0\.1 GET /version 200", line), line
    assert "s3cret" not in log.read_text()
    # logrotate moves the file away and sends SIGHUP: kproxy writes to a new file.
    log.rename(tmp_path / "access.log.1")
    kp.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    assert await status_of(f"{kp.url}/api") == 200
    await until(
        lambda: log.exists() and "GET /api 200" in log.read_text(), "the new file's line", timeout=5.0, step=0.1
    )
    assert "GET /api 200" not in (tmp_path / "access.log.1").read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"


async def test_v2_still_logs_text_to_stderr_with_the_fast_path_on(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy
) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "-v=2")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{kp.url}/version") as r:
                assert r.status == 200
    assert await kp.stop() == 0
    assert len([line for line in kp.stderr_lines if line.endswith("kproxy] 127.0.0.1 GET /version 200")]) == 3
