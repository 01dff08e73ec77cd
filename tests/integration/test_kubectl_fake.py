"""kubectl 1.32 through the real kproxy process, for what the fake API server learned to do:
``diff``, ``apply --server-side`` (a conflict and ``--force-conflicts``), ``auth can-i``,
``auth whoami``, ``explain`` (OpenAPI v3 schemas), ``events``, ``debug`` (an ephemeral
container, attached) and ``port-forward`` with real traffic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, Rule, TestPKI
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.integration.forward_proxies import free_port

POD = "nginx-7c5ddbdf54-2xkqw"


@pytest.fixture
async def fake(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    rules = [Rule(groups=("system:authenticated",), verbs=("get", "list", "watch", "create", "update", "patch"))]
    rules.append(Rule(groups=("system:authenticated",), non_resource_urls=("*",), resources=(), verbs=("get",)))
    server = FakeAPIServer(pki=pki, tokens={"kubectl-token": "dev"}, rules=rules)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def kp(fake: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    config = fake.kubeconfig(tmp_path, token="kubectl-token")
    return await start_kproxy("--port", "0", "--kubeconfig", str(config), "--reject-paths=")


async def kubectl(kp: KproxyProcess, home: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        kp.url,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def manifest(tmp_path: Path, name: str, data: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n{data}")
    return str(path)


async def test_apply_server_side_diff_and_conflicts(kp: KproxyProcess, fake: FakeAPIServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = manifest(tmp_path, "settings", "  color: blue\n")
    code, out, err = await kubectl(kp, home, "apply", "--server-side", "-f", first)
    assert (code, out, err) == (0, "configmap/settings serverside-applied\n", "")
    code, out, err = await kubectl(kp, home, "diff", "--server-side", "-f", first)
    assert (code, out, err) == (0, "", "")  # nothing would change
    second = manifest(tmp_path, "settings", "  color: green\n  size: L\n")
    before = fake.store.resource_version()
    code, out, err = await kubectl(kp, home, "diff", "--server-side", "-f", second)
    assert code == 1 and err == ""  # differences found
    assert "-  color: blue" in out and "+  color: green" in out and "+  size: L" in out
    assert fake.store.resource_version() == before  # diff is a dry run: nothing stored
    code, out, err = await kubectl(kp, home, "patch", "cm", "settings", "-p", '{"data":{"color":"red"}}')
    assert code == 0, err
    code, out, err = await kubectl(kp, home, "apply", "--server-side", "-f", second)
    assert code == 1 and out == ""
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.color' in err
    code, out, err = await kubectl(kp, home, "apply", "--server-side", "--force-conflicts", "-f", second)
    assert (code, out) == (0, "configmap/settings serverside-applied\n")
    assert fake.store.get("configmaps", "settings", "default")["data"] == {"color": "green", "size": "L"}
    code, out, err = await kubectl(kp, home, "create", "configmap", "dry", "--dry-run=server", "-o", "name")
    assert (code, out) == (0, "configmap/dry\n") and fake.store.find("configmaps", "dry", "default") is None


async def test_auth_whoami_and_can_i(kp: KproxyProcess, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = await kubectl(kp, home, "auth", "whoami")
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split() == ["Username", "dev"]
    assert (await kubectl(kp, home, "auth", "can-i", "patch", "configmaps"))[:2] == (0, "yes\n")
    assert (await kubectl(kp, home, "auth", "can-i", "delete", "pods"))[:2] == (1, "no\n")
    code, out, err = await kubectl(kp, home, "delete", "pod", POD)
    assert code == 1
    assert 'pods "nginx-7c5ddbdf54-2xkqw" is forbidden: User "dev" cannot delete resource "pods"' in err


async def test_explain(kp: KproxyProcess, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = await kubectl(kp, home, "explain", "pods")
    assert (code, err) == (0, "")
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n")
    assert "Pod is a collection of containers that can run on a host." in out
    code, out, err = await kubectl(kp, home, "explain", "deployment.spec.replicas")
    assert (code, err) == (0, "")
    assert "GROUP:      apps" in out and "FIELD: replicas <integer>" in out
    code, out, err = await kubectl(kp, home, "explain", "pods.spec.containers.ports", "--recursive")
    assert code == 0 and "containerPort\t<integer> -required-" in out


async def test_events_and_debug(kp: KproxyProcess, fake: FakeAPIServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = await kubectl(kp, home, "events", "--for", f"pod/{POD}")
    assert (code, err) == (0, "")
    reasons = [line.split()[2] for line in out.splitlines()[1:]]
    assert sorted(reasons) == ["Created", "Pulled", "Scheduled", "Started"]  # one timestamp: any order
    code, out, err = await kubectl(
        kp,
        home,
        "debug",
        "-i",
        POD,
        "--image=busybox:1.37",
        "-c",
        "dbg",
        "--profile=general",
        "--",
        "cat",
        stdin=b"hi\n",
    )
    assert (code, out) == (0, "hi\n"), err
    pod = fake.store.get("pods", POD, "default")
    assert [c["name"] for c in pod["spec"]["ephemeralContainers"]] == ["dbg"]
    assert pod["status"]["ephemeralContainerStatuses"][0]["state"]["running"]


async def test_port_forward_with_real_traffic(kp: KproxyProcess, tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        kp.url,
        "port-forward",
        f"pod/{POD}",
        f"{port}:80",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(tmp_path),
    )
    assert proc.stdout is not None
    try:
        assert (
            await asyncio.wait_for(proc.stdout.readline(), 30)
        ).decode() == f"Forwarding from 127.0.0.1:{port} -> 80\n"
        async with aiohttp.ClientSession() as session:
            for path, status in (("/", 200), ("/missing", 404)):
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == status and resp.headers["Server"] == "nginx/1.27.3"
    finally:
        proc.terminate()
        await proc.wait()
