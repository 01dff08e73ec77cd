"""``python -m benchmarks.instructions [REF ...]``: instructions per small GET, by callgrind.

Wall-clock numbers on a shared 2-vCPU VM drift by 20–30% between runs; the number of
instructions kproxy executes per request does not (valgrind counts them, whatever else
the machine is doing). This compares git refs (default: the working tree and HEAD) on
the same workload, to tell a real change on the request path from noise:

* an upstream in this process: plain HTTP/1.1, keep-alive, the benchmark's 2.8 KB pod;
* kproxy (``python -m kproxy``, the ref exported with ``git archive``) under
  ``valgrind --tool=callgrind --instr-atstart=no``, so start-up is not counted;
* a warm-up (the fast path learns its verdicts), then instrumentation is switched on with
  ``callgrind_control``, N requests are sent over C keep-alive connections, and the
  dump's total is divided by N.

Plain HTTP to the upstream keeps TLS's (OpenSSL's) share out, so the figure is kproxy's
own work plus the kernel boundary. ``--upstream-tls`` makes the upstream speak TLS with a
client certificate asked for, as kube-apiserver does, to see kproxy's TLS read and write
path to the API server (a change there does not show without it). Needs Linux and
valgrind (Debian's ``valgrind``).

``--tls`` measures kproxy's own TLS listener instead: kproxy serves HTTPS with
``--client-ca-file``, the load presents a client certificate (CN ``bench-user``, O
``system:masters``), and each ``--identities`` mode (``proxy,impersonate``) is measured
for every ref, so the cost of ``--client-identity impersonate`` can be read against
``proxy`` mode's. TLS connections are opened (and handshaken) before instrumentation
starts and kept for the warm-up and the measured requests: a handshake under callgrind
costs as much as hundreds of requests, and it is requests that are counted. The
figure then includes OpenSSL's per-request work (decrypting and encrypting).

A ref written ``REF+observed`` runs kproxy with metrics served and the JSON access log
written to a file (``--metrics-address``, ``--access-log json``), to see what they cost:
``python -m benchmarks.instructions worktree worktree+observed``. (callgrind counts user
space only: the access log's ``write`` at the end of each turn is not in the figure.)

Under callgrind kproxy runs some fifty times slower, so each request takes milliseconds:
an observed request then formats a duration past the access log's table, searches the
histogram's buckets and makes a new time prefix every time, which at a real pace
(thousands of requests a second) it rarely does. ``--clock-step MICROS`` gives kproxy a
``time.monotonic`` that moves MICROS microseconds per call (``itertools.count``: no
Python frame), deterministic, so that it sees a real run's durations and milliseconds:
``--clock-step 25`` is about 10,000 small GETs a second (some four calls per request).
Compare refs measured with the same step only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .payloads import POD_PATH, write_payloads
from .pki import Pki, make_pki

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]


async def _upstream(pod: bytes, tls: Pki | None = None) -> tuple[asyncio.AbstractServer, int]:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAudit-Id: 00000000-0000-0000-0000-000000000000\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(pod), pod)
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    context = None
    if tls is not None:  # as kube-apiserver: TLS, a client certificate asked for
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
        context.load_cert_chain(tls.server_cert, tls.server_key)
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


_REQUEST = f"GET {POD_PATH} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n".encode()
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _requests(conn: Conn, count: int) -> None:
    reader, writer = conn
    for _ in range(count):
        writer.write(_REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
        await reader.readexactly(length)


async def _load(port: int, total: int, connections: int) -> None:
    per = total // connections

    async def one() -> None:
        conn = await asyncio.open_connection("127.0.0.1", port)
        try:
            await _requests(conn, per)
        finally:
            conn[1].close()

    await asyncio.gather(*(one() for _ in range(connections)))


def _client_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def _export(ref: str, into: Path) -> Path:
    if ref == "worktree":
        return REPO
    archive = subprocess.run(["git", "archive", "--format=tar", ref, "kproxy"], cwd=REPO, capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"error: git archive {ref}: {archive.stderr.decode().strip()}")
    target = into / f"src-{ref.replace('/', '_')}"
    if target.exists():  # the same ref measured again
        return target
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


async def _measure(
    ref: str,
    work: Path,
    upstream_port: int,
    total: int,
    connections: int,
    tls: Pki | None,
    identity: str,
    upstream_tls: Pki | None = None,
    clock_step: float | None = None,
) -> float:
    ref, plus, extra = ref.partition("+")
    if plus and extra != "observed":
        raise SystemExit(f"error: {ref}+{extra}: the only variant is +observed")
    flags = (
        ["--metrics-address=127.0.0.1:0", "--access-log=json", f"--access-log-file={work / 'access.log'}"]
        if extra
        else []
    )
    source = _export(ref, work)
    kubeconfig = work / "kubeconfig"
    cluster: dict[str, str] = {"server": f"http://127.0.0.1:{upstream_port}"}
    user: dict[str, str] = {"token": "bench-token"}
    if upstream_tls is not None:
        cluster = {"server": f"https://127.0.0.1:{upstream_port}", "certificate-authority": str(upstream_tls.ca)}
        user = {"client-certificate": str(upstream_tls.client_cert), "client-key": str(upstream_tls.client_key)}
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    listener: list[str] = []
    if tls is not None:
        listener = [
            f"--tls-cert-file={tls.server_cert}", f"--tls-private-key-file={tls.server_key}",
            f"--client-ca-file={tls.ca}", f"--client-identity={identity}",
        ]  # fmt: skip
    out = work / f"callgrind-{ref.replace('/', '_')}-{time.monotonic_ns()}.out"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(source)
    env["KPROXY_READINESS_PERIOD"] = "3600"  # the probe at start-up only, before the count
    command = [
        sys.executable, *_launch(clock_step), "--port=0", f"--kubeconfig={kubeconfig}", *listener, *flags,
    ]  # fmt: skip
    options = ["--instr-atstart=no", f"--callgrind-out-file={out}"]
    async with _callgrind_kproxy(options, command, env, source, f"at {ref}") as (proc, port):
        if tls is None:
            await _load(port, max(connections, total // 10), connections)  # warm-up
            await _control("-i", "on", str(proc.pid))
            await _load(port, total, connections)
        else:
            ctx = _client_context(tls)
            opened = [
                await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"), 300
                )
                for _ in range(connections)
            ]
            try:
                per = total // connections
                await asyncio.gather(*(_requests(c, max(1, per // 10)) for c in opened))  # warm-up
                await _control("-i", "on", str(proc.pid))
                await asyncio.gather(*(_requests(c, per) for c in opened))
            finally:
                for _, writer in opened:
                    writer.close()
        await _control("-d", str(proc.pid))
    return _total(work, out) / total


def _launch(clock_step: float | None) -> list[str]:
    """How Python starts kproxy: ``-m kproxy``, or with ``--clock-step`` a stepped clock
    put in place before kproxy is imported (see the module docstring)."""
    if clock_step is None:
        return ["-m", "kproxy"]
    return [
        "-c",
        "import itertools, runpy, time\n"
        f"time.monotonic = itertools.count(time.monotonic(), {clock_step / 1e6!r}).__next__\n"
        "runpy.run_module('kproxy', run_name='__main__', alter_sys=True)",
    ]


@asynccontextmanager
async def _callgrind_kproxy(
    options: list[str], command: list[str], env: dict[str, str], cwd: Path, what: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``command`` (a kproxy) under callgrind with ``options``: the process and the port
    it printed it serves on, until the block ends and it is stopped. ``what`` names the
    kproxy in the error when it does not start (``at REF``, ``from DIR``)."""
    proc = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", *options, *command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env, cwd=cwd,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode()
        if not line.startswith("Starting to serve on "):
            raise SystemExit(f"error: kproxy {what} printed {line!r}")
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        await proc.wait()


async def _control(*args: str) -> None:
    control = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await control.communicate()
    if control.returncode != 0:
        raise SystemExit(f"error: callgrind_control {' '.join(args)}: {err.decode().strip()}")


def _total(work: Path, out: Path) -> float:
    totals = 0
    for dump in work.glob(out.name + "*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                totals = max(totals, int(line.split()[1]))
    if not totals:
        raise SystemExit(f"error: no callgrind totals in {out}")
    return float(totals)


async def _run(
    refs: list[str],
    total: int,
    connections: int,
    keep: bool,
    tls: bool,
    identities: list[str],
    upstream_tls: bool,
    clock_step: float | None = None,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="kproxy-instr-"))
    try:
        root = write_payloads(work / "root", 10).root
        pod = (root / POD_PATH.lstrip("/")).read_bytes()
        pki = make_pki(work / "pki") if tls or upstream_tls else None
        up_pki = pki if upstream_tls else None
        server, port = await _upstream(pod, up_pki)
        try:
            results = []
            for ref in refs:
                for identity in identities if tls else [""]:
                    label = f"{ref} (TLS, {identity})" if tls else ref
                    started = time.monotonic()
                    per = await _measure(
                        ref, work, port, total, connections, pki if tls else None, identity, up_pki, clock_step
                    )
                    results.append((label, per))
                    print(f"{label:>28}: {per:,.0f} instructions per request ({time.monotonic() - started:.0f} s)")
            base = results[0][1]
            for label, per in results[1:]:
                print(f"{label:>28} / {results[0][0]}: {per / base:.3f}")
        finally:
            server.close()
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.splitlines()[0])
    p.add_argument(
        "refs",
        nargs="*",
        default=["HEAD", "worktree"],
        help="git refs, or 'worktree', each optionally +observed (default: HEAD worktree)",
    )
    p.add_argument("--requests", type=int, default=3000, help="measured requests (default 3000)")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument(
        "--tls", action="store_true", help="through kproxy's TLS listener, with a client certificate (--client-ca-file)"
    )
    p.add_argument(
        "--identities",
        default="proxy",
        help="with --tls: comma-separated --client-identity modes to measure per ref (e.g. proxy,impersonate)",
    )
    p.add_argument(
        "--upstream-tls",
        action="store_true",
        help="the upstream speaks TLS and asks for kproxy's client certificate, as kube-apiserver does "
        "(the figure then includes OpenSSL's work on the API server's side of kproxy)",
    )
    p.add_argument(
        "--clock-step",
        type=float,
        metavar="MICROS",
        help="kproxy's time.monotonic moves MICROS microseconds per call, a real run's pace rather than "
        "callgrind's (e.g. 25; see the module docstring)",
    )
    args = p.parse_args(argv)
    identities = [m for m in args.identities.split(",") if m]
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("error: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    asyncio.run(
        _run(
            args.refs,
            args.requests,
            args.connections,
            args.keep_workdir,
            args.tls,
            identities,
            args.upstream_tls,
            args.clock_step,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
