"""The things measured: nginx directly, ``kubectl proxy`` and kproxy (plain, and with
metrics and the JSON access log on: ``kproxy-observed``).

The proxies get the same kubeconfig (client certificate, the nginx TLS port) and the
same flags: ``--port=0`` and ``--reject-paths=`` (an empty list in kubectl since
kubernetes#99616), because kubectl's default reject list blocks the exec path the
upgrade scenario uses; ``kproxy-observed`` adds ``--metrics-address=127.0.0.1:0
--access-log=json --access-log-file=HOME/access.log`` (a file: what an operator would
keep). Start-up time runs from just before the process is spawned to the first
successful ``/version`` response through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .clients import http_get
from .config import OBSERVED
from .payloads import VERSION_PATH
from .pki import Pki
from .procs import Child, ProcessSet

__all__ = ["Target", "start_proxy", "write_kubeconfig"]

REPO = Path(__file__).resolve().parents[1]
_PROXY_VARS = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "KUBECONFIG",
)


@dataclass
class Target:
    name: str
    port: int
    child: Child | None = None  # None for "direct"
    startup_s: float | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None


def write_kubeconfig(path: Path, server: str, pki: Pki) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority": str(pki.ca)}}],
        "users": [
            {"name": "bench", "user": {"client-certificate": str(pki.client_cert), "client-key": str(pki.client_key)}}
        ],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
    }
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


def proxy_env(home: Path) -> Mapping[str, str]:
    # No proxies or KUBECONFIG from the caller's shell; a private HOME for kubectl's caches.
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["HOME"] = str(home)
    return env


def proxy_command(name: str, kubectl: str, kubeconfig: Path, home: Path) -> list[str]:
    common = ["--port=0", f"--kubeconfig={kubeconfig}", "--reject-paths="]
    if name == "kubectl":
        return [kubectl, "proxy", *common]
    if name == OBSERVED:
        log = home / "access.log"
        common += ["--metrics-address=127.0.0.1:0", "--access-log=json", f"--access-log-file={log}"]
    return [sys.executable, "-m", "kproxy", *common]


async def start_proxy(
    procs: ProcessSet,
    name: str,
    kubectl: str,
    kubeconfig: Path,
    home: Path,
    cpus: set[int] | None,
    kproxy_dir: Path = REPO,
    timeout: float = 30.0,
) -> Target:
    """Start one proxy; kproxy runs from ``kproxy_dir`` (the checkout, or an exported ref)."""
    env = dict(proxy_env(home))
    if name != "kubectl":
        # Ahead of any installed (or editable-installed) kproxy on sys.path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(kproxy_dir), env.get("PYTHONPATH", "")) if p)
    start = time.perf_counter()
    command = proxy_command(name, kubectl, kubeconfig, home)
    child = await procs.start(name, command, cpus=cpus, env=env, cwd=kproxy_dir)
    try:
        line = await asyncio.wait_for(child.first_line, timeout)
    except TimeoutError:
        await procs.stop(child)
        raise RuntimeError(f"{name} did not start: {child.log_tail()}") from None
    if not line.startswith("Starting to serve on "):
        await procs.stop(child)
        raise RuntimeError(f"{name} printed {line!r}: {child.log_tail()}")
    port = int(line.rsplit(":", 1)[1])
    deadline = start + timeout
    while True:
        try:
            reply = await http_get(port, VERSION_PATH, timeout=max(0.1, deadline - time.perf_counter()))
            if reply.status == 200:
                break
        except (OSError, TimeoutError):
            pass
        if time.perf_counter() > deadline or not child.alive:
            await procs.stop(child)
            raise RuntimeError(f"{name} never answered {VERSION_PATH} with 200: {child.log_tail()}")
        await asyncio.sleep(0.002)
    return Target(name, port, child, time.perf_counter() - start)
