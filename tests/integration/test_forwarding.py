"""The real kproxy process in front of the fake API server: forwarding, headers,
filters, routing, streaming, errors. Clients are curl, raw sockets and aiohttp."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy
from tests.waiting import until

ECHO = "/debug/kproxy/echo"


async def curl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def raw_request(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes, read until the server closes or 2 s of silence after an answer
    (up to 15 s for the first bytes: a loaded machine must not fail the test)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    chunks: list[bytes] = []
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 2 if chunks else 15)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError:
        pass
    writer.close()
    await writer.wait_closed()
    return b"".join(chunks)


def echo_headers(body: dict[str, Any]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in body["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


async def test_startup_line_and_quiet_stderr(proxy: KproxyProcess) -> None:
    assert proxy.address.startswith("127.0.0.1:")
    assert proxy.port > 0
    code, out, _ = await curl(f"{proxy.url}/api/v1/namespaces")
    assert code == 0
    names = {item["metadata"]["name"] for item in json.loads(out)["items"]}
    assert {"default", "kube-system"} <= names
    assert await proxy.stop() == 0
    assert proxy.stderr == ""


async def test_credentials_host_and_forwarded_headers(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    code, out, _ = await curl(
        "-H",
        "x-dup: 1",
        "-H",
        "X-Dup: 2",
        "-H",
        "Connection: x-private",
        "-H",
        "X-Private: secret-hop",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "-H",
        "X-Forwarded-For: 10.0.0.1",
        f"{proxy.url}{ECHO}?a=%20b&c=d+e&&f;g=1&a=2",
    )
    assert code == 0, out
    body = json.loads(out)
    headers = echo_headers(body)
    assert body["query"] == "a=%20b&c=d+e&&f;g=1&a=2"
    assert headers["Authorization"] == ["Bearer test-token"]
    assert headers["Host"] == [f"127.0.0.1:{api.port}"]
    assert headers["X-Dup"] == ["1", "2"]  # canonicalised, repeated
    assert headers["X-Forwarded-For"] == ["10.0.0.1, 127.0.0.1"]
    for hop in ("Connection", "X-Private", "Keep-Alive", "Proxy-Authorization"):
        assert hop not in headers
    assert "Accept-Encoding" not in headers  # kproxy adds none (kubectl would add gzip)
    assert headers["User-Agent"][0].startswith("curl/")


async def test_client_authorization_wins(proxy: KproxyProcess) -> None:
    code, out, _ = await curl("-H", "Authorization: Bearer client-own", f"{proxy.url}{ECHO}")
    assert code == 0
    # The fake rejects the unknown token: the client's header was forwarded as is.
    assert json.loads(out)["code"] == 401


async def test_user_agent_added_when_missing(proxy: KproxyProcess) -> None:
    code, out, _ = await curl("-H", "User-Agent:", f"{proxy.url}{ECHO}")
    assert json.loads(out) and code == 0
    assert echo_headers(json.loads(out))["User-Agent"][0].startswith("kproxy/")


@pytest.mark.parametrize(
    ("path", "host", "status"),
    [
        ("/api/v1/namespaces/default/pods/x/exec", "localhost", 403),
        ("/api/v1/namespaces/default/pods/x/attach?stdin=1", "localhost", 403),
        ("/api/v1/namespaces/default/pods/x/%65xec", "localhost", 403),
        ("/api/v1/namespaces", "evil.com", 403),
        ("/api/v1/namespaces", "localhost.evil.com", 403),
        ("/api/v1/namespaces", "localhost:8001", 200),
        ("/api/v1/namespaces", "[::1]:8001", 200),  # kubernetes#77496 fixed
        ("/api/v1/namespaces", "[::1]", 200),
        ("/api/v1/namespaces/default/pods/x/portforward", "localhost", 404),  # allowed, fake: no pod x
    ],
)
async def test_filter(proxy: KproxyProcess, path: str, host: str, status: int) -> None:
    code, out, _ = await curl("-i", "-H", f"Host: {host}", f"{proxy.url}{path}")
    assert code == 0
    head, _, body = out.partition("\r\n\r\n")
    assert head.split(" ")[1] == str(status), out
    if status == 403:
        assert body == "Forbidden\n"
        assert "Content-Type: text/plain; charset=utf-8" in head
        assert "X-Kproxy-Rejected-By:" in head


async def test_filter_runs_before_upstream_contact(start_kproxy: StartKproxy, tmp_path: Path) -> None:
    kp = await start_kproxy("--port", "0", "--server", "http://127.0.0.1:1")
    code, out, _ = await curl("-i", f"{kp.url}/api/v1/namespaces/default/pods/x/exec")
    assert " 403 " in out.splitlines()[0]


@pytest.mark.parametrize(
    ("request_path", "location"),
    [
        ("//api//v1/./pods/../x?a=1&b=%2F", "/api/v1/x?a=1&b=%2F"),
        ("/api/v1/x/..", "/api/v1"),
    ],
)
async def test_path_cleaning_redirects(proxy: KproxyProcess, request_path: str, location: str) -> None:
    data = f"GET {request_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    reply = await raw_request(proxy.port, data)
    head = reply.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 301")
    assert f"Location: {location}" in head


async def test_not_found_outside_prefix(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--api-prefix", "/custom")
    code, out, _ = await curl("-i", f"{kp.url}/api/v1/namespaces")
    assert " 404 " in out.splitlines()[0]
    assert out.endswith("404 page not found\n")
    # The prefix is stripped and the client's percent-encoding kept.
    code, out, _ = await curl(f"{kp.url}/custom{ECHO}/a%2Fb?x=1")
    body = json.loads(out)
    assert body["path"] == f"{ECHO}/a%2Fb"
    code, out, _ = await curl("-i", f"{kp.url}/custom?x=1")
    assert "Location: /custom/?x=1" in out


async def test_append_server_path(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port",
        "0",
        "--server",
        f"{api.url}/debug/kproxy",
        "--token",
        "test-token",
        "--certificate-authority",
        str(api_ca(api, tmp_path)),
        "--append-server-path",
    )
    code, out, _ = await curl(f"{kp.url}/echo?q=1")
    body = json.loads(out)
    assert body["path"] == "/debug/kproxy/echo"
    assert kp.stderr == ""


async def test_server_path_warning(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port",
        "0",
        "--server",
        f"{api.url}/k8s/clusters/c-abc",
        "--token",
        "test-token",
        "--certificate-authority",
        str(api_ca(api, tmp_path)),
    )
    await asyncio.sleep(0.2)
    assert kp.stderr.endswith(
        "Your kube context contains a server path /k8s/clusters/c-abc, "
        "use --append-server-path to automatically append the path to each request"
    )
    assert kp.stderr.startswith("W")


def api_ca(api: FakeAPIServer, tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    assert api.pki is not None
    path.write_bytes(api.pki.ca_pem)
    return path


async def test_watch_streams_event_by_event(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    # Event N+1 is created only after event N reached the client through kproxy: any
    # buffering in the proxy would make this hang (the per-event timeout fails it).
    url = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={api.store.resource_version()}"
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            for i in range(5):
                api.store.create("configmaps", {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}, "default")
                line = await asyncio.wait_for(resp.content.readline(), 5)
                event = json.loads(line)
                assert event["type"] == "ADDED"
                assert event["object"]["metadata"]["name"] == f"cm-{i}"


async def test_gzip_passes_through(proxy: KproxyProcess) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(
            f"{proxy.url}/debug/kproxy/gzip?size=100000", headers={"Accept-Encoding": "gzip"}
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            raw = await resp.read()
        assert len(gzip.decompress(raw)) == 100000
        async with session.get(
            f"{proxy.url}/debug/kproxy/gzip?size=1000", headers={"Accept-Encoding": "identity"}
        ) as resp:
            assert "Content-Encoding" not in resp.headers
            assert len(await resp.read()) == 1000


async def test_large_upload_and_download_bounded_memory(proxy: KproxyProcess) -> None:
    size = 1 << 30
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        digest = hashlib.sha256()
        received = 0
        async with session.get(f"{proxy.url}/debug/kproxy/bytes?size={size}") as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_chunked(1 << 20):
                digest.update(chunk)
                received += len(chunk)
        assert received == size

        async def body() -> AsyncIterator[bytes]:
            block = b"x" * (1 << 20)
            for _ in range(size >> 20):
                yield block

        async with session.post(f"{proxy.url}/debug/kproxy/upload", data=body()) as resp:
            result = await resp.json()
        assert result["length"] == size
    status = Path(f"/proc/{proxy.proc.pid}/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
    assert peak_kib < 200 * 1024, f"kproxy peak RSS {peak_kib} KiB for a 1 GiB transfer"


async def test_client_disconnect_releases_upstream(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    url = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true"
    before = api.open_watches()
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            await until(lambda: api.open_watches() > before, "the watch on the API server", timeout=2.5, step=0.05)
            assert api.open_watches() == before + 1
    await until(lambda: api.open_watches() == before, "the watch to end", timeout=5, step=0.05)
    assert api.open_watches() == before


async def test_unreachable_upstream_is_502_status(start_kproxy: StartKproxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kp = await start_kproxy("--port", "0", "--server", f"http://127.0.0.1:{port}")
    code, out, _ = await curl("-i", f"{kp.url}/api/v1/pods")
    head, _, body = out.partition("\r\n\r\n")
    assert head.split(" ")[1] == "502"
    status = json.loads(body)
    assert status["kind"] == "Status" and status["code"] == 502
    assert f"127.0.0.1:{port}" in status["message"] and "refused" in status["message"]
    await asyncio.sleep(0.1)
    assert "Error while proxying request" in kp.stderr


async def test_stalled_tls_handshake_is_504(start_kproxy: StartKproxy) -> None:
    # A server that accepts TCP and then says nothing: the TLS handshake never completes.
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        kp = await start_kproxy(
            "--port",
            "0",
            "--server",
            f"https://127.0.0.1:{port}",
            "--insecure-skip-tls-verify",
            "--connect-timeout",
            "1s",
        )
        code, out, _ = await curl("-i", "--max-time", "20", f"{kp.url}/api")
        head, _, body = out.partition("\r\n\r\n")
        assert head.split(" ")[1] == "504"
        assert json.loads(body)["reason"] == "Timeout"
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


async def test_tls_failure_names_cause(api: FakeAPIServer, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--server", api.url, "--token", "test-token")
    code, out, _ = await curl(f"{kp.url}/api")
    status = json.loads(out)
    assert status["code"] == 502
    assert "certificate" in status["message"] and api.url.split("//")[1] in status["message"]


async def test_malformed_and_oversized_requests(proxy: KproxyProcess) -> None:
    reply = await raw_request(proxy.port, b"GARBAGE\r\n\r\n")
    assert reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    big = b"GET /api HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    reply = await raw_request(proxy.port, big)
    assert reply.startswith((b"HTTP/1.0 431", b"HTTP/1.1 431"))
    reply = await raw_request(proxy.port, b"GET /api HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert b"Host" in reply
    # The process is still serving.
    code, out, _ = await curl(f"{proxy.url}/version")
    assert json.loads(out)["major"] == "1"


async def test_upgrade_echo_websocket_and_spdy(
    proxy: KproxyProcess, start_kproxy: StartKproxy, kubeconfig: Path
) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths=")
    pod = "/api/v1/namespaces/default/pods/{}/exec?command=echo"
    code, out, _ = await curl(f"{kp.url}/api/v1/namespaces/default/pods")
    name = json.loads(out)["items"][0]["metadata"]["name"]
    for upgrade_headers in (
        "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n",
        "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
        writer.write(
            f"POST {pod.format(name)} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
            f"{upgrade_headers}Content-Length: 0\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        for payload in (b"hello", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 64):
            writer.write(payload)
            got = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
            assert got == payload
        writer.close()
        await writer.wait_closed()
    # The default filter still rejects exec upgrades.
    reply = await raw_request(
        proxy.port,
        f"POST {pod.format(name)} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
        "Upgrade: SPDY/3.1\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 403")


async def test_sigterm_drains_in_flight_request(proxy: KproxyProcess) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/debug/kproxy/chunks?n=4&interval=0.3") as resp:
            assert resp.status == 200
            first = await resp.content.readline()
            proxy.proc.terminate()  # mid-response: the rest must still arrive
            rest = await resp.content.read()
    assert first + rest == b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    assert await proxy.stop() == 0
    # Once stopped, nothing listens any more.
    code, _, _ = await curl(f"{proxy.url}/version")
    assert code == 7
