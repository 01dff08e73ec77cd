"""Small GET over HTTPS on one kept-alive connection: kproxy's own TLS listener against
kubectl proxy behind a TLS front (stunnel), the way a team would otherwise share it.

* ``get_https`` / kproxy: a second kproxy process, started for the measurement with
  ``--tls-cert-file`` (the bench server certificate), same kubeconfig and flags as the
  kproxy target;
* ``get_https`` / kubectl: stunnel terminating TLS in front of the kubectl proxy target;
* ``get_https_front`` / kproxy: the same stunnel in front of the plain kproxy target, for
  reference: kproxy's TLS against a front's, on the same proxy.

The front and the proxy share the proxy's core (a front elsewhere would hide its cost);
CPU per request counts both. wrk (one connection, kept alive) runs on the load core; it
presents no client certificate (it cannot), so no ``--client-ca-file`` here: the cost of
``--client-identity impersonate`` is measured deterministically by
``python -m benchmarks.instructions --tls``. Every process is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from .nginx import free_port, wait_port
from .payloads import POD_PATH
from .procs import Child, ProcessSet, cpu_seconds
from .scenarios import Metrics
from .targets import Target, proxy_command, proxy_env
from .wrk import run_wrk

__all__ = ["https_get", "start_kproxy_tls", "start_stunnel"]


async def start_stunnel(
    procs: ProcessSet, workdir: Path, backend_port: int, cert: Path, key: Path, cpus: set[int] | None, label: str
) -> tuple[Child, int]:
    """stunnel: TLS on a free port, plain TCP to ``backend_port``; one backend connection per client's."""
    port = free_port()
    conf = workdir / f"stunnel-{label}-{port}.conf"
    conf.write_text(
        "\n".join(
            [
                "foreground = yes",
                "pid =",
                "debug = warning",
                f"[{label}]",
                f"accept = 127.0.0.1:{port}",
                f"connect = 127.0.0.1:{backend_port}",
                f"cert = {cert}",
                f"key = {key}",
            ]
        )
        + "\n"
    )
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel") or "stunnel4"
    child = await procs.start(f"stunnel-{label}", [stunnel, str(conf)], cpus=cpus)
    await wait_port(port, child)
    return child, port


async def start_kproxy_tls(
    procs: ProcessSet,
    kubeconfig: Path,
    home: Path,
    cert: Path,
    key: Path,
    cpus: set[int] | None,
    kproxy_dir: Path,
) -> Target:
    """kproxy serving HTTPS itself, with the kproxy target's flags otherwise."""
    env = dict(proxy_env(home))
    env["PYTHONPATH"] = str(kproxy_dir)
    cmd = [*proxy_command("kproxy", "", kubeconfig, home), f"--tls-cert-file={cert}", f"--tls-private-key-file={key}"]
    child = await procs.start("kproxy-tls", cmd, cpus=cpus, env=env, cwd=kproxy_dir)
    try:
        line = await asyncio.wait_for(child.first_line, 30)
    except TimeoutError:
        line = ""
    if not line.startswith("Starting to serve on "):
        await procs.stop(child)
        raise RuntimeError(f"kproxy with TLS printed {line!r}: {child.log_tail()}")
    return Target("kproxy", int(line.rsplit(":", 1)[1]), child)


async def https_get(port: int, pids: list[int], seconds: int, warmup: int) -> Metrics:
    """wrk over HTTPS, one kept-alive connection; CPU per request of ``pids``' trees."""
    url = f"https://127.0.0.1:{port}{POD_PATH}"
    if warmup:
        await run_wrk(url, 1, warmup, ["Accept: application/json"])
    cpu0 = sum(cpu_seconds(pid) for pid in pids)
    result = await run_wrk(url, 1, seconds, ["Accept: application/json"])
    used = sum(cpu_seconds(pid) for pid in pids) - cpu0
    metrics: Metrics = dict(result.as_dict())
    metrics["cpu_us_per_req"] = round(1e6 * used / max(result.requests, 1), 1)
    return metrics
