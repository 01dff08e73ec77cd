"""The cross-origin guard and ``--cors-allowed-origins`` through the real kproxy process,
from the attacker's side as well as the granted page's: curl and raw sockets send what a
browser sends (``Origin``, preflights, WebSocket handshakes); the fake API server's
store and request log show what was forwarded and done (docs/browsers.md).
tests/integration/test_dashboard.py does the same in a real browser."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy

PODS = "/api/v1/namespaces/default/pods"
ALLOWED = "http://localhost:3000"
WEBSOCKET = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n"
)


async def curl(url: str, *args: str) -> tuple[int, list[tuple[str, str]], str]:
    """(status, headers in order with lower-case names, body) of one request."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-i", *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    head, _, body = out.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
    return int(lines[0].split()[1]), headers, body


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n == name]


def cors_names(headers: list[tuple[str, str]]) -> list[str]:
    return [n for n, _ in headers if n.startswith("access-control-")]


def pod_manifest(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }
    )


def pod_names(api: FakeAPIServer) -> set[str]:
    return {p["metadata"]["name"] for p in api.store.list("pods", "default")["items"]}


def first_pod(api: FakeAPIServer) -> str:
    return str(api.store.list("pods", "default")["items"][0]["metadata"]["name"])


async def handshake(kp: KproxyProcess, request: str) -> bytes:
    """Send one request head on a fresh connection; the answer's head (and body start)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    try:
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        if not head.startswith(b"HTTP/1.1 101"):
            head += await asyncio.wait_for(reader.read(65536), 15)
        return head
    finally:
        writer.close()


async def test_a_foreign_page_cannot_post_or_open_a_port_forward(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    before = len(api.requests)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9"):
        # A "simple" cross-origin POST (no preflight in a browser), and a JSON one.
        for content_type in ("text/plain", "application/json"):
            status, headers, body = await curl(
                f"{proxy.url}{PODS}",
                "-X",
                "POST",
                "-H",
                f"Origin: {origin}",
                "-H",
                f"Content-Type: {content_type}",
                "--data",
                pod_manifest("evil"),
            )
            status_object = json.loads(body)
            assert (status, status_object["kind"], status_object["code"]) == (403, "Status", 403)
            assert "cross-origin request refused" in status_object["message"]
            assert cors_names(headers) == []
        status, _, _ = await curl(f"{proxy.url}{PODS}/{first_pod(api)}", "-X", "DELETE", "-H", f"Origin: {origin}")
        assert status == 403
    # A WebSocket port-forward, the handshake a browser sends for `new WebSocket(...)`.
    pod = first_pod(api)
    answer = await handshake(
        proxy,
        f"GET {PODS}/{pod}/portforward?ports=80 HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
        f"Origin: http://evil.example\r\n{WEBSOCKET}\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"may not open an upgraded connection (WebSocket, SPDY)" in answer
    assert len(api.requests) == before  # nothing reached the API server
    assert "evil" not in pod_names(api) and pod in pod_names(api)
    # Without Origin (kubectl, curl) the same port-forward handshake is upgraded.
    answer = await handshake(
        proxy, f"GET {PODS}/{pod}/portforward?ports=80 HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n{WEBSOCKET}\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 101"), answer


async def test_a_foreign_page_may_send_safe_requests_but_gets_no_grant(
    proxy: KproxyProcess, api: FakeAPIServer
) -> None:
    # OPTIONS without Access-Control-Request-Method is no preflight: it is forwarded (the
    # API server answers 405 to it).
    for method, expected in ((["-X", "GET"], 200), (["--head"], 200), (["-X", "OPTIONS"], 405)):
        before = len(api.requests)
        status, headers, _ = await curl(f"{proxy.url}{PODS}", *method, "-H", "Origin: http://evil.example")
        assert status == expected, method
        assert len(api.requests) == before + 1
        assert cors_names(headers) == []


async def test_the_own_origin_is_served(proxy: KproxyProcess, api: FakeAPIServer) -> None:
    for host in (f"127.0.0.1:{proxy.port}", f"localhost:{proxy.port}"):
        name = f"own-{host.partition(':')[0].replace('.', '-')}"
        status, headers, _ = await curl(
            f"{proxy.url}{PODS}",
            "-H",
            f"Host: {host}",
            "-H",
            f"Origin: http://{host}",
            "-H",
            "Content-Type: application/json",
            "--data",
            pod_manifest(name),
        )
        assert status == 201 and name in pod_names(api)
        assert cors_names(headers) == []


@pytest.fixture
async def granted(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--cors-allowed-origins",
        rf"{ALLOWED},https://[a-z0-9-]+\.example\.com",
        "--reject-methods",
        "^PUT$",
    )


async def test_allowed_origins_get_preflights_answered_by_kproxy(granted: KproxyProcess, api: FakeAPIServer) -> None:
    await asyncio.sleep(0.1)
    assert f"cross-origin requests allowed from {ALLOWED}, https://[a-z0-9-]+" in granted.stderr
    before = len(api.requests)
    for origin in (ALLOWED, "https://dash.example.com"):
        status, headers, body = await curl(
            f"{granted.url}{PODS}/x",
            "-X",
            "OPTIONS",
            "-H",
            f"Origin: {origin}",
            "-H",
            "Access-Control-Request-Method: DELETE",
            "-H",
            "Access-Control-Request-Headers: content-type,authorization",
        )
        assert (status, body) == (204, "")
        assert values(headers, "access-control-allow-origin") == [origin]  # echoed, never *
        assert values(headers, "access-control-allow-methods") == ["GET, HEAD, POST, PATCH, DELETE"]
        assert values(headers, "access-control-allow-headers") == ["content-type, authorization"]
        assert values(headers, "access-control-max-age") == ["600"]
        assert "Origin" in values(headers, "vary")[0]
        assert values(headers, "access-control-allow-credentials") == []
    assert len(api.requests) == before  # preflights are kproxy's to answer


@pytest.mark.parametrize(
    ("origin", "method", "asked", "message"),
    [
        (ALLOWED, "PUT", "", "method 'PUT' is not allowed across origins"),  # --reject-methods
        (ALLOWED, "PROPFIND", "", "method 'PROPFIND' is not allowed"),
        (ALLOWED, "GET", "impersonate-user", "request header 'impersonate-user' is not allowed"),
        ("https://a.b.example.com", "GET", "", "a page from https://a.b.example.com is not allowed"),
        ("http://evil.example", "DELETE", "", "a page from http://evil.example is not allowed"),
        ("null", "GET", "", "a page with Origin 'null' is not allowed"),
    ],
)
async def test_preflights_outside_the_rules_get_no_grant(
    granted: KproxyProcess, api: FakeAPIServer, origin: str, method: str, asked: str, message: str
) -> None:
    before = len(api.requests)
    extra = ["-H", f"Access-Control-Request-Headers: {asked}"] if asked else []
    status, headers, body = await curl(
        f"{granted.url}{PODS}",
        "-X",
        "OPTIONS",
        "-H",
        f"Origin: {origin}",
        "-H",
        f"Access-Control-Request-Method: {method}",
        *extra,
    )
    assert status == 403 and message in json.loads(body)["message"]
    assert cors_names(headers) == []
    assert len(api.requests) == before


async def test_allowed_origins_answers_carry_the_grant(granted: KproxyProcess, api: FakeAPIServer) -> None:
    pod = first_pod(api)
    status, headers, body = await curl(f"{granted.url}{PODS}/{pod}", "-X", "DELETE", "-H", f"Origin: {ALLOWED}")
    assert status == 200 and json.loads(body)["metadata"]["name"] == pod
    assert pod not in pod_names(api)
    assert values(headers, "access-control-allow-origin") == [ALLOWED]
    assert "Origin" in values(headers, "vary")
    exposed = values(headers, "access-control-expose-headers")[0]
    assert "Audit-Id" in exposed and "Warning" in exposed
    # kproxy's own answers too: a filter refusal, a 404 from the API server, a Status.
    for url, expected in ((f"{PODS}/{pod}/exec", 403), (f"{PODS}/{pod}", 404), ("/api/v1/namespaces/Bad_NS/x", 404)):
        status, headers, _ = await curl(f"{granted.url}{url}", "-H", f"Origin: {ALLOWED}")
        assert status == expected and values(headers, "access-control-allow-origin") == [ALLOWED], url
    # A streamed answer (a watch) carries it on its head.
    status, headers, _ = await curl(
        f"{granted.url}{PODS}?watch=1&timeoutSeconds=1", "-H", f"Origin: {ALLOWED}", "--max-time", "30"
    )
    assert status == 200 and values(headers, "access-control-allow-origin") == [ALLOWED]


async def test_repeated_requests_with_origin_never_lose_the_grant(granted: KproxyProcess) -> None:
    # Plain requests repeated on one connection take the fast path; a browser's must not,
    # or its answer would come without the grant.
    plain = f"GET {PODS} HTTP/1.1\r\nHost: localhost:{granted.port}\r\n\r\n"
    browser = f"GET {PODS} HTTP/1.1\r\nHost: localhost:{granted.port}\r\nOrigin: {ALLOWED}\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", granted.port)
    try:
        for request in (plain, plain, browser, plain, browser, browser):
            writer.write(request.encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 15)
            granted_ = f"Access-Control-Allow-Origin: {ALLOWED}".encode() in head
            assert granted_ is (request is browser), head
    finally:
        writer.close()


async def test_allowed_origins_may_open_upgrades(granted: KproxyProcess, api: FakeAPIServer) -> None:
    answer = await handshake(
        granted,
        f"GET {PODS}/{first_pod(api)}/portforward?ports=80 HTTP/1.1\r\nHost: 127.0.0.1:{granted.port}\r\n"
        f"Origin: {ALLOWED}\r\n{WEBSOCKET}\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 101"), answer


@pytest.fixture
async def generous_backend() -> AsyncIterator[str]:
    """A service behind the proxy subresource that grants every origin itself."""

    async def handle(request: web.BaseRequest) -> web.Response:
        return web.Response(
            text="secret",
            headers={"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true"},
        )

    runner = web.ServerRunner(web.Server(handle), shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


async def test_other_servers_cors_headers_never_reach_the_page(
    granted: KproxyProcess, api: FakeAPIServer, generous_backend: str
) -> None:
    api.store.create("services", {"metadata": {"name": "open"}, "spec": {"ports": [{"port": 80}]}}, "default")
    api.register_backend("service", "default", "open", 80, generous_backend)
    url = f"{granted.url}/api/v1/namespaces/default/services/open/proxy/"
    for extra in ([], ["-H", "Origin: http://evil.example"]):
        status, headers, body = await curl(url, *extra)
        assert (status, body, cors_names(headers)) == (200, "secret", [])
    # A granted page gets kproxy's grant, not the service's.
    status, headers, _ = await curl(url, "-H", f"Origin: {ALLOWED}")
    assert values(headers, "access-control-allow-origin") == [ALLOWED]
    assert values(headers, "access-control-allow-credentials") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "error: --cors-allowed-origins: '*' is not an origin"),
        ("http://a/b", "error: --cors-allowed-origins: 'http://a/b' is not an origin"),
        ("https://(a", "error: --cors-allowed-origins: invalid regular expression 'https://(a'"),
        ("null", "error: --cors-allowed-origins: 'null' cannot be allowed"),
        (".*", "error: --cors-allowed-origins: the pattern '.*' matches the origin 'null'"),
    ],
)
async def test_bad_entries_stop_kproxy_naming_the_flag_and_the_entry(
    kubeconfig: Path, value: str, message: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kproxy",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        f"--cors-allowed-origins={value}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
