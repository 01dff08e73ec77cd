"""Shared fixtures: a clean environment, a test PKI, the fake API server, and a real
``kproxy`` process started on 127.0.0.1 port 0 and stopped by its PID."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import kproxy.log
from kproxy.testing import FakeAPIServer, TestPKI

_PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "REQUEST_METHOD",
    "KUBECONFIG",
    # A test machine that is itself a pod must not turn the tests in-cluster.
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KPROXY_SERVICE_ACCOUNT_DIR",
    "KPROXY_EXEC_PLUGIN_TIMEOUT",
)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # kproxy processes import this checkout, whatever their working directory.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # Tests must not see the machine's proxies or kubeconfig; HOME points at a
    # temporary directory so ~/.kube/config is absent and kubectl caches stay there.
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture(autouse=True)
def fresh_log_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test sees its own first throttled line (kproxy.log keeps the times per process).
    monkeypatch.setattr(kproxy.log, "_next_line", {})
    monkeypatch.setattr(kproxy.log, "_held_back", {})


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    return TestPKI.create()


@pytest.fixture
async def api(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(pki=pki, tokens=("test-token",))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class KproxyProcess:
    proc: asyncio.subprocess.Process
    address: str
    stderr_lines: list[str] = field(default_factory=list)
    _stderr_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = self.address
        if host.startswith("[::]:"):
            host = "127.0.0.1:" + host.rsplit(":", 1)[1]
        return f"http://{host}"

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._stderr_task is not None:
            await self._stderr_task
        assert self.proc.returncode is not None
        return self.proc.returncode


def kproxy_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kproxy", *args]


async def run_kproxy(
    *args: str, env: dict[str, str] | None = None, cwd: str | None = None, expect_start: bool = True
) -> KproxyProcess:
    proc = await asyncio.create_subprocess_exec(
        *kproxy_cmd(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env if env is not None else dict(os.environ),
        cwd=cwd,
    )
    assert proc.stdout is not None and proc.stderr is not None
    kp = KproxyProcess(proc, "")

    async def pump() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            kp.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    kp._stderr_task = asyncio.create_task(pump())
    if not expect_start:
        return kp
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
    except TimeoutError:
        await kp.stop(signal.SIGKILL)
        raise AssertionError(f"kproxy did not start: {kp.stderr}") from None
    text = line.decode()
    if not text.startswith("Starting to serve on "):
        await kp.stop(signal.SIGKILL)
        raise AssertionError(f"unexpected kproxy output {text!r}; stderr: {kp.stderr}")
    kp.address = text.removeprefix("Starting to serve on ").strip()
    return kp


StartKproxy = Callable[..., Awaitable[KproxyProcess]]


@pytest.fixture
async def start_kproxy() -> AsyncIterator[StartKproxy]:
    started: list[KproxyProcess] = []

    async def start(*args: str, **kwargs: object) -> KproxyProcess:
        kp = await run_kproxy(*args, **kwargs)  # type: ignore[arg-type]
        started.append(kp)
        return kp

    yield start
    for kp in started:
        await kp.stop()


@pytest.fixture
def kubeconfig(api: FakeAPIServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path, auth="token", token="test-token")


@pytest.fixture
async def proxy(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    """kproxy with default flags in front of the fake API server (token auth)."""
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))


def kubectl_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["HOME"] = str(home)
    return env
