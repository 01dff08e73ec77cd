"""The demo tells the seed's story: ``kproxy --demo``, then the walkthrough verbatim.

Through the real ``kproxy --demo`` process, with real curl and kubectl: the nginx
service's proxy URL answers the stand-in's HTML page; ``kubectl cluster-info`` lists
services whose URLs answer; Deployments and ReplicaSets stand behind the pods (``get
all -A``, ``get deploy``, ``rollout status``); ``logs -f`` streams; ``port-forward
svc/nginx`` carries real traffic; an exec'd ``curl`` reaches the service by name. Bad
flags are refused before any demo cluster starts.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import KproxyProcess, StartKproxy, kubectl_env, run_kproxy
from tests.integration.forward_proxies import free_port

NGINX_PROXY = "/api/v1/namespaces/default/services/nginx/proxy/"


async def kubectl(kp: KproxyProcess, home: Path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        kp.url,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def curl(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-L", "-w", "\n%{http_code}", url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


@pytest.fixture
async def demo(start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--demo", "--port", "0")


async def test_the_seed_walkthrough(demo: KproxyProcess, tmp_path: Path) -> None:
    # curl http://127.0.0.1:8001/api/v1/namespaces/default/services/nginx/proxy/
    status, body = await curl(demo.url + NGINX_PROXY)
    assert status == 200
    assert "<title>Welcome to nginx!</title>" in body and "nginx-7c5ddbdf54-" in body
    # kubectl cluster-info: the services, with URLs that answer.
    code, out, err = await kubectl(demo, tmp_path, "cluster-info")
    assert (code, err) == (0, "")
    assert out.startswith(f"Kubernetes control plane is running at {demo.url}\n")
    links = re.findall(r"is running at (\S+)", out)
    assert f"{demo.url}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy" in links
    for link in links:
        status, _ = await curl(link)
        assert status == 200, link


async def test_workloads_behind_the_pods(demo: KproxyProcess, tmp_path: Path) -> None:
    code, out, err = await kubectl(demo, tmp_path, "get", "all", "-A")
    assert (code, err) == (0, "")
    for name in (
        "pod/nginx-7c5ddbdf54-2xkqw",
        "service/nginx",
        "deployment.apps/nginx",
        "replicaset.apps/nginx-7c5ddbdf54",
    ):
        assert name in out
    code, out, err = await kubectl(demo, tmp_path, "get", "deploy")
    assert (code, err) == (0, "")
    assert out.split("\n")[1].split()[:4] == ["nginx", "2/2", "2", "2"]
    code, out, err = await kubectl(demo, tmp_path, "rollout", "status", "deployment/nginx", "--timeout=30s")
    assert (code, out, err) == (0, 'deployment "nginx" successfully rolled out\n', "")
    code, out, err = await kubectl(demo, tmp_path, "get", "endpoints", "nginx")
    assert code == 0 and re.search(r"nginx\s+10\.244\.\d+\.\d+:80,10\.244\.\d+\.\d+:80", out), out


async def test_logs_follow_streams(demo: KproxyProcess, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        demo.url,
        "logs",
        "-f",
        "--tail=1",
        "deploy/nginx",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(tmp_path),
    )
    assert proc.stdout is not None
    try:
        lines = [await asyncio.wait_for(proc.stdout.readline(), 20) for _ in range(3)]
    finally:
        proc.terminate()
        await proc.wait()
    numbers = [int(line.decode().rsplit(" ", 1)[1]) for line in lines]
    assert numbers == [9, 10, 11]  # the last line logged, then new ones as they come


async def test_port_forward_svc_nginx(demo: KproxyProcess, tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        demo.url,
        "port-forward",
        "svc/nginx",
        f"{port}:80",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(tmp_path),
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode() == f"Forwarding from 127.0.0.1:{port} -> 80\n"
        for _ in range(2):  # two connections through one port-forward
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 200 and "Welcome to nginx!" in await resp.text()
    finally:
        proc.terminate()
        await proc.wait()


async def test_exec_curl_reaches_the_service(start_kproxy: StartKproxy, tmp_path: Path) -> None:
    # kproxy, like kubectl proxy, refuses exec by default: allow it for this step.
    kp = await start_kproxy("--demo", "--port", "0", "--reject-paths=^/api/.*/pods/.*/attach")
    code, out, err = await kubectl(kp, tmp_path, "exec", "deploy/nginx", "--", "curl", "-s", "http://nginx/")
    assert (code, err) == (0, "")
    assert "<h1>Welcome to nginx!</h1>" in out
    code, out, err = await kubectl(kp, tmp_path, "exec", "deploy/nginx", "--", "curl", "-sS", "http://example.com/")
    assert (code, out) == (6, "")
    assert "curl: (6) Could not resolve host: example.com" in err


async def test_bad_flags_stop_before_the_demo_starts() -> None:
    kp = await run_kproxy("--demo", "--port", "0", "--authorized-ip-ranges", "137.117.106.90/29", expect_start=False)
    assert await asyncio.wait_for(kp.proc.wait(), 30) == 1
    await kp.stop()
    assert kp.stderr_lines == [
        "error: --authorized-ip-ranges entry 1: '137.117.106.90/29' is not the network address of its range; "
        "use '137.117.106.88/29' (a CIDR range must be written with its first address: 137.117.106.88 to "
        "137.117.106.95)"
    ]
