"""Upstream connections against a real server: nginx speaking TLS (client certificates
required, session tickets on) and HTTP/2 with a stream limit, in front of the fake API
server. nginx's access log says, per request, which connection carried it, whether its
TLS session was resumed (``$ssl_session_reused``) and which protocol it spoke: the
evidence for resumption on every kind of upstream connection (pool, HTTP/2 lane,
upgrades) and for the lane's stream sharing."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from kproxy.testing import FakeAPIServer, TestPKI
from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.forward_proxies import free_port
from tests.integration.test_exec import POD, Kubectl

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian's nginx-light; .ci/run installs it)"),
]

_CONF = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format evidence '$connection $ssl_session_reused $ssl_protocol $server_protocol $request_uri';
    access_log {prefix}/access.log evidence;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    http2_max_concurrent_streams 2;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {pki}/server.crt;
        ssl_certificate_key {pki}/server.key;
        ssl_client_certificate {pki}/ca.crt;
        ssl_verify_client on;
        ssl_protocols {protocol};
        ssl_session_tickets on;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    port: int
    prefix: Path
    proc: asyncio.subprocess.Process

    def log(self) -> list[tuple[str, str, str, str, str]]:
        path = self.prefix / "access.log"
        text = path.read_text() if path.exists() else ""
        return [tuple(line.split(" ", 4)) for line in text.splitlines()]  # type: ignore[misc]

    async def wait_log(self, count: int, path: str = "") -> list[tuple[str, str, str, str, str]]:
        """The access log once it has ``count`` lines (and one for ``path``, when given).
        nginx writes a line when a request ends: an upgraded one's when its tunnel closes."""
        for _ in range(500):
            lines = self.log()
            if len(lines) >= count and (not path or any(path in line[4] for line in lines)):
                return lines
            await asyncio.sleep(0.02)
        raise AssertionError(f"nginx logged {self.log()}, not {count} lines (with {path or 'any path'})")


async def start_nginx(prefix: Path, pki_dir: Path, upstream: int, protocol: str) -> Nginx:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        _CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            port=port,
            pki=pki_dir,
            upstream=upstream,
            protocol=protocol,
        )
    )
    assert NGINX is not None
    proc = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"
    )
    for _ in range(250):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if proc.returncode is not None:
                raise AssertionError((prefix / "error.log").read_text()) from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return Nginx(port, prefix, proc)
    raise AssertionError("nginx did not start")


@pytest.fixture
async def plain_api() -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(anonymous=True)  # behind nginx, which checks the client certificate
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(params=["TLSv1.2", "TLSv1.3"])
async def nginx(request: pytest.FixtureRequest, pki: TestPKI, plain_api: FakeAPIServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    pki_dir = tmp_path / "pki"
    pki.write(pki_dir)
    server = await start_nginx(tmp_path / "nginx", pki_dir, plain_api.port, str(request.param))
    try:
        yield server
    finally:
        if server.proc.returncode is None:
            server.proc.send_signal(signal.SIGTERM)  # by its PID: the master stops its worker
            await server.proc.wait()


def kubeconfig_for(nginx: Nginx, tmp_path: Path) -> Path:
    pki_dir = tmp_path / "pki"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "n",
                "cluster": {
                    "server": f"https://127.0.0.1:{nginx.port}",
                    "certificate-authority": str(pki_dir / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {
                    "client-certificate": str(pki_dir / "client.crt"),
                    "client-key": str(pki_dir / "client.key"),
                },
            }
        ],
        "contexts": [{"name": "n", "context": {"cluster": "n", "user": "u", "namespace": "default"}}],
        "current-context": "n",
    }
    path = tmp_path / "kubeconfig-nginx.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def proxy(nginx: Nginx, tmp_path: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig_for(nginx, tmp_path)), "--reject-paths=")


def connections(lines: list[tuple[str, str, str, str, str]]) -> dict[str, str]:
    """Connection number -> whether its TLS session was resumed ("r") or not (".")."""
    return {conn: reused for conn, reused, *_ in lines}


async def test_every_new_pool_connection_resumes_the_session(
    proxy: KproxyProcess, nginx: Nginx, plain_api: FakeAPIServer
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(f"{proxy.url}/version") as resp:
            assert resp.status == 200
            await resp.read()
        slow = f"{proxy.url}/debug/kproxy/chunks?n=2&interval=0.3"

        async def fetch() -> bytes:
            async with session.get(slow) as resp:
                return await resp.read()

        # Six requests at once on a pool of one: new connections, every one resumed.
        bodies = await asyncio.gather(*(fetch() for _ in range(6)))
    assert bodies == [b"chunk 0\nchunk 1\n"] * 6
    lines = await nginx.wait_log(7)
    assert all(proto == "HTTP/1.1" for *_, proto, _ in lines)
    first, *later = dict.fromkeys(conn for conn, *_ in lines)
    reused = connections(lines)
    assert reused[first] == "." and len(later) >= 5
    assert [reused[conn] for conn in later] == ["r"] * len(later)


async def test_the_http2_lane_shares_connections_and_resumes_too(
    proxy: KproxyProcess, nginx: Nginx, plain_api: FakeAPIServer
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.get(f"{proxy.url}/version") as resp:
            await resp.read()
        # No resourceVersion: the watch starts with the current objects. (nginx holds an
        # HTTP/2 answer's HEADERS back until the first byte of its body.)
        url = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true"
        watches = await asyncio.gather(*(session.get(url) for _ in range(5)))
        try:
            assert [w.status for w in watches] == [200] * 5
            for watch in watches:
                line = await asyncio.wait_for(watch.content.readline(), 10)
                assert b'"ADDED"' in line
        finally:
            for watch in watches:
                watch.close()
    lines = await nginx.wait_log(6)
    watch_lines = [line for line in lines if "watch=true" in line[4]]
    assert len(watch_lines) == 5 and {line[3] for line in watch_lines} == {"HTTP/2.0"}
    # nginx allows two streams per connection: three connections, all resumed.
    lane = connections(watch_lines)
    assert len(lane) == 3 and set(lane.values()) == {"r"}


async def test_upgrades_resume_the_session_and_stay_on_http1(
    proxy: KproxyProcess, nginx: Nginx, plain_api: FakeAPIServer, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/version") as resp:
            await resp.read()
    home = tmp_path / "kubectl-home"
    home.mkdir()
    code, out, err = await Kubectl(proxy.url, home, "websocket").run("exec", POD, "--", "echo", "resumed")
    assert (code, out) == (0, b"resumed\n"), err
    lines = await nginx.wait_log(2, "/exec")
    (exec_line,) = [line for line in lines if "/exec" in line[4]]
    assert exec_line[1] == "r" and exec_line[3] == "HTTP/1.1"


async def test_a_session_the_server_no_longer_knows_is_a_full_handshake(
    proxy: KproxyProcess, nginx: Nginx, pki: TestPKI, plain_api: FakeAPIServer, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/version") as resp:
            assert resp.status == 200
        # A restarted nginx has new ticket keys: the saved session is refused.
        nginx.proc.send_signal(signal.SIGTERM)
        await nginx.proc.wait()
        (nginx.prefix / "access.log").unlink()
        conf = (nginx.prefix / "nginx.conf").read_text()
        (nginx.prefix / "nginx.conf").write_text(conf)
        assert NGINX is not None
        nginx.proc = await asyncio.create_subprocess_exec(
            NGINX, "-p", str(nginx.prefix), "-c", str(nginx.prefix / "nginx.conf"), "-g", "daemon off;"
        )
        for _ in range(250):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", nginx.port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
        for _ in range(2):
            async with session.get(f"{proxy.url}/version") as resp:
                assert resp.status == 200  # the stale pooled connection is retried, then a full handshake
                await resp.read()
    lines = await nginx.wait_log(2)
    assert [line[1] for line in lines] == [".", "."]
