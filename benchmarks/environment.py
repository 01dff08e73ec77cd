"""The API-server stand-in, set up once per run and torn down in ``finally``:
certificates, canned payloads, the upstream program, nginx, a kubeconfig, the CPU
layout and the descriptor limit. Shared by the benchmark run and the profiler helper.
"""

from __future__ import annotations

import asyncio
import io
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .nginx import Nginx, start_nginx
from .noise import Layout
from .payloads import Payloads, write_payloads
from .pki import Pki, make_pki
from .procs import ProcessSet, pin_self
from .targets import REPO, write_kubeconfig

__all__ = ["Environment", "environment"]


@dataclass(frozen=True)
class Environment:
    workdir: Path
    procs: ProcessSet
    payloads: Payloads
    nginx: Nginx
    upstream_port: int
    pki: Pki
    kubeconfig: Path
    home: Path  # HOME for the proxies (kubectl's caches go there)
    load_cpus: set[int] | None  # harness, wrk, curl, nginx, upstream program
    proxy_cpus: set[int] | None  # the proxy under test
    layout: str
    fd_limit: int
    kproxy_dir: Path  # where ``python -m kproxy`` runs from
    kproxy_version: str

    @property
    def cores(self) -> Layout | None:
        if not self.load_cpus or not self.proxy_cpus:
            return None
        return Layout(min(self.load_cpus), min(self.proxy_cpus))


def _layout(config: Config, procs: ProcessSet) -> tuple[set[int] | None, set[int] | None, str]:
    cpus = sorted(os.sched_getaffinity(0))
    if not config.pin:
        return None, None, "not pinned (--no-pin)"
    if len(cpus) < 2:
        return None, None, f"not pinned: only CPU {cpus} available"
    if not procs.has_taskset:
        return None, None, "not pinned: taskset not found"
    return (
        {cpus[0]},
        {cpus[1]},
        (
            f"harness, wrk, curl, nginx and the upstream program on CPU {cpus[0]}; "
            f"the proxy under test on CPU {cpus[1]} (taskset)"
        ),
    )


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=60)


def _kproxy_source(ref: str | None, workdir: Path) -> tuple[Path, str]:
    """The directory to run kproxy from, and a description of the version measured."""
    if ref is None:
        described = _git("describe", "--always", "--dirty").stdout.decode().strip()
        return REPO, f"working tree {described}".strip()
    sha = _git("rev-parse", "--short", f"{ref}^{{commit}}")
    if sha.returncode != 0:
        raise RuntimeError(f"--kproxy-ref {ref!r}: {sha.stderr.decode().strip()}")
    archive = _git("archive", "--format=tar", ref, "kproxy")
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    target = workdir / "kproxy-src"
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: refuse paths outside target
            tar.extractall(target, filter="data")
        else:  # our own repository's archive
            tar.extractall(target)  # noqa: S202
    return target, f"{ref} ({sha.stdout.decode().strip()})"


def _compile(source: Path) -> None:
    """Byte-compile the kproxy measured, as ``pip install`` does: start-up is measured
    as users see it, not with every module compiled from source on every start (which
    is what happens where PYTHONDONTWRITEBYTECODE is set)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(source / "kproxy")], check=True)


def _raise_fd_limit(wanted: int) -> int:
    # 1,000 watches need ~1,000 sockets in the harness, 2,000 in nginx and 1,000 in the
    # upstream program; children inherit this limit (Go raises its own anyway).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


@asynccontextmanager
async def environment(config: Config, keep_workdir: bool = False) -> AsyncIterator[Environment]:
    workdir = Path(tempfile.mkdtemp(prefix="kproxy-bench-"))
    workdir.chmod(0o755)  # nginx's worker (an unprivileged user) reads files below it
    for sub in ("logs", "home"):
        (workdir / sub).mkdir()
    procs = ProcessSet(workdir / "logs")
    try:
        pki = make_pki(workdir / "pki")
        payloads = write_payloads(workdir / "root", config.list_pods)
        load_cpus, proxy_cpus, layout = _layout(config, procs)
        if load_cpus:
            pin_self(load_cpus)  # children inherit it: wrk, curl, nginx, the upstream program
        fd_limit = _raise_fd_limit(max(16384, 3 * max(config.watches, config.big_watches) + 1024))
        kproxy_dir, kproxy_version = _kproxy_source(config.kproxy_ref, workdir)
        _compile(kproxy_dir)
        upstream = await procs.start(
            "upstream", [sys.executable, "-m", "benchmarks.upstream"], cpus=load_cpus, cwd=REPO
        )
        line = await asyncio.wait_for(upstream.first_line, 30)
        if not line.startswith("listening on "):
            raise RuntimeError(f"the upstream program did not start: {line!r} {upstream.log_tail()}")
        upstream_port = int(line.rsplit(" ", 1)[1])
        nginx = await start_nginx(
            procs, workdir / "nginx", payloads.root, pki, upstream_port, load_cpus, h2_streams=config.h2_streams
        )
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", nginx.tls_url, pki)
        yield Environment(
            workdir,
            procs,
            payloads,
            nginx,
            upstream_port,
            pki,
            kubeconfig,
            workdir / "home",
            load_cpus,
            proxy_cpus,
            layout,
            fd_limit,
            kproxy_dir,
            kproxy_version,
        )
    finally:
        await procs.stop_all()
        if keep_workdir:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
