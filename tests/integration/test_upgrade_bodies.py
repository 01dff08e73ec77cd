"""Upgrades with bodies, and HTTP/2 offers, through the real kproxy process.

``curl --http2`` on ``http://`` offers h2c in an HTTP/1.1 request (``Upgrade: h2c``):
kproxy speaks no HTTP/2 to clients, so it serves the request over HTTP/1.1 as if no
offer had been made (GET and POST, the upstream never sees the offer). A real upgrade
request that carries a body gets its body to the API server before the answer is
awaited (holding it until a 101 hung both sides).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.recording_upstream import RecordingUpstream
from tests.integration.test_forwarding import curl


@pytest.fixture
async def kp(recorder: RecordingUpstream, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--port", "0", "--server", recorder.url, "--reject-paths=")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_curl_http2_is_served_over_http11(kp: KproxyProcess, recorder: RecordingUpstream, method: str) -> None:
    url = f"{kp.url}/api/v1/namespaces/default/configmaps"
    post = ["-X", "POST", "-H", "Content-Type: application/json", "-d", '{"kind": "ConfigMap"}']
    body = post if method == "POST" else []
    # Twice on one connection: the connection stays HTTP/1.1 and is reused.
    code, out, err = await curl("--http2", "-v", *body, url, "--next", "--http2", *body, url)
    assert code == 0, err
    assert "HTTP/1.1 200 OK" in err and "HTTP/2" not in err.replace("Upgrade: h2c", "")
    assert "Re-using existing connection" in err
    answers = [json.loads(part) for part in out.replace("}{", "}\n{").splitlines()]
    assert [a["method"] for a in answers] == [method, method]
    await recorder.settled()
    assert len(recorder.seen) == 2
    for seen in recorder.seen:
        assert seen.header("upgrade") is None and seen.header("http2-settings") is None
        assert seen.body == (b'{"kind": "ConfigMap"}' if method == "POST" else b"")


class UpgradeUpstream:
    """An API server that answers an upgrade only once it has the request's whole body
    (as a real one does), then echoes the upgraded stream."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            if b"transfer-encoding: chunked" in head:
                body = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    body += (await reader.readexactly(size + 2))[:size]
                    if size == 0:
                        break
            else:
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in head else 0
                body = await reader.readexactly(length)
            self.bodies.append(body)
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-echo\r\n\r\n")
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        (b"Content-Length: 13\r\n", b'{"stdin":"x"}'),
        (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    ],
    ids=["length", "chunked"],
)
@pytest.mark.parametrize("upgrade_header", [True, False], ids=["upgrade", "connection-only"])
async def test_an_upgrade_request_body_goes_out_before_the_answer(
    start_kproxy: StartKproxy, framing: bytes, body: bytes, upgrade_header: bool
) -> None:
    upstream = UpgradeUpstream()
    port = await upstream.start()
    try:
        kp = await start_kproxy("--port", "0", "--server", f"http://127.0.0.1:{port}", "--reject-paths=")
        reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
        writer.write(
            b"POST /api/v1/namespaces/default/pods/web-0/exec?command=sh HTTP/1.1\r\nHost: localhost\r\n"
            b"Connection: Upgrade\r\n" + (b"Upgrade: x-echo\r\n" if upgrade_header else b"") + framing + b"\r\n" + body
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)  # no hang
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert upstream.bodies == [b"hello" if b"chunked" in framing else body]
        writer.write(b"after the 101")
        assert await asyncio.wait_for(reader.readexactly(13), 15) == b"after the 101"
        writer.close()
    finally:
        await upstream.stop()


async def test_an_upgrade_with_a_body_refused_by_the_server_is_answered(
    kp: KproxyProcess, recorder: RecordingUpstream
) -> None:
    # The recording upstream answers 200, not 101: client-go's "invalid upgrade
    # response", at once — never a hang waiting for a body the server never got.
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(
        b"POST /api/v1/namespaces/default/pods/p/exec HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nContent-Length: 4\r\n\r\nbody"
    )
    answer = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"invalid upgrade response: status code 200" in answer
    await recorder.settled()
    assert [s.body for s in recorder.seen] == [b"body"]
