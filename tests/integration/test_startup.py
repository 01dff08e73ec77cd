"""Start-up through the real process: the first request's upstream connection is dialled
while the client is still on its way (``docs/startup.md`` §4), and a warm-up that fails or
hangs costs nothing. What start-up imports: ``test_process.py``."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from kproxy.testing import TestPKI
from tests.conftest import StartKproxy
from tests.integration.forward_proxies import free_port
from tests.integration.recording_upstream import RecordingUpstream
from tests.integration.test_observability import admin_url
from tests.waiting import until


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_first_request_takes_the_connection_dialled_at_start_up(
    tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    pki = TestPKI.create()
    ca = pki.write(tmp_path / "pki")["ca.crt"]
    async with RecordingUpstream(tls=pki.server_ssl_context(client_certs=False)) as upstream:
        kp = await start_kproxy("--port", "0", "--server", upstream.url, "--certificate-authority", str(ca))
        # Before any request: one connection, its TLS handshake done.
        await upstream.settled(connections=1)
        assert (len(upstream.connections), upstream.seen) == (1, [])
        assert await get(f"{kp.url}/version") == (200, '{"method": "GET", "target": "/version", "length": 0}')
        assert await get(f"{kp.url}/api") == (200, '{"method": "GET", "target": "/api", "length": 0}')
        assert len(upstream.connections) == 1  # the one from start-up carried both
    assert await kp.stop() == 0 and kp.stderr == ""


async def test_with_the_readiness_probe_its_connection_is_the_one_made_at_start_up(
    start_kproxy: StartKproxy,
) -> None:
    async with RecordingUpstream() as upstream:
        kp = await start_kproxy("--port", "0", "--server", upstream.url, "--metrics-address", "127.0.0.1:0")
        base = await admin_url(kp)

        async def ready() -> bool:  # once the probe's answer came back, its connection in the pool
            return (await get(f"{base}/readyz"))[0] == 200

        await until(ready, "/readyz 200", timeout=30, step=0.05)
        assert await get(f"{kp.url}/version") == (200, '{"method": "GET", "target": "/version", "length": 0}')
        # The probe's connection served the request: no second dial for a warm-up.
        assert [seen.target for seen in upstream.seen] == ["/readyz", "/version"]
        assert len(upstream.connections) == 1
    assert await kp.stop() == 0


async def test_a_warm_up_that_fails_is_silent_and_harmless(tmp_path: Path, start_kproxy: StartKproxy) -> None:
    port = free_port()  # nothing listens there yet: the warm-up is refused
    kp = await start_kproxy("--port", "0", "--server", f"http://127.0.0.1:{port}")
    # A request while the API server is down fails as it always has (whether it waited
    # for the warm-up or dialled itself); after its answer the warm-up is surely over.
    status, body = await get(f"{kp.url}/version")
    assert status == 502 and "refused" in body
    upstream = await RecordingUpstream().start(port)
    try:
        assert await get(f"{kp.url}/version") == (200, '{"method": "GET", "target": "/version", "length": 0}')
    finally:
        await upstream.stop()
    assert await kp.stop() == 0
    # One line, for the request that failed (kubectl's); none for the warm-up.
    assert len(kp.stderr_lines) == 1 and "Error while proxying request" in kp.stderr


async def test_a_warm_up_that_hangs_does_not_hold_up_the_stop(tmp_path: Path, start_kproxy: StartKproxy) -> None:
    pki = TestPKI.create()
    ca = pki.write(tmp_path / "pki")["ca.crt"]
    with socket.socket() as silent:  # connections complete in its backlog; no TLS ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        server = f"https://127.0.0.1:{silent.getsockname()[1]}"
        kp = await start_kproxy(
            "--port", "0", "--server", server, "--certificate-authority", str(ca), "--connect-timeout", "1h"
        )
        await asyncio.sleep(0.2)  # the warm-up is under way (or not: the stop must be prompt either way)
        kp.proc.send_signal(signal.SIGTERM)
        # Far below the hour the handshake could wait: the stop cancels it.
        assert await asyncio.wait_for(kp.proc.wait(), 60) == 0
        assert await kp.stop() == 0 and kp.stderr == ""


async def test_the_cyclic_collector_is_off_during_start_up_and_on_once_serving(kubeconfig: Path) -> None:
    # docs/startup.md §5. The real command, with a print that reports the collector's
    # state when the serve line goes out and then asks the process to stop.
    probe = (
        "import builtins, gc, os, signal, sys\n"
        "states = []\n"
        "real_print = builtins.print\n"
        "def print(*args, **kw):\n"
        "    real_print(*args, **kw)\n"
        "    if args and str(args[0]).startswith('Starting to serve on'):\n"
        "        states.append(gc.isenabled())\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "builtins.print = print\n"
        "from kproxy.cli import run\n"
        "started = run._serve_until_signalled\n"
        "async def serve(options):\n"
        "    states.append(gc.isenabled())\n"
        "    await started(options)\n"
        "run._serve_until_signalled = serve\n"
        "from kproxy.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "sys.stderr.write(f'states {states} after {gc.isenabled()}\\n')\n"
        "sys.exit(code)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        probe,
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and out.decode().startswith("Starting to serve on ")
    # Off while the options were built and the server started; on when it serves.
    assert err.decode().splitlines()[-1] == "states [False, True] after True"
