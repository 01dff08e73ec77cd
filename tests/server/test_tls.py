"""kproxy.server.tls in-process, on real loopback sockets: the door (before the handshake),
Go's answer to plain HTTP, the handshake with the context in force, reloads, close.

The whole process (uvloop, kubectl, curl) is tests/integration/test_sharing.py's."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.flags import Flags
from kproxy.config.serving_tls import serving_tls
from kproxy.server import tls as tls_module
from kproxy.server.tls import PLAIN_HTTP_ANSWER, ServingCertificates, TLSListener, looks_like_http
from kproxy.testing import TestPKI
from tests.certificates import issue, name, serial


@pytest.mark.parametrize(
    ("first", "http"),
    [
        (b"GET /version HTTP/1.1\r\n", True),
        (b"HEAD / HTTP/1.1", True),
        (b"POST /api", True),
        (b"PUT /x", True),
        (b"OPTIONS * HTTP/1.1", True),
        (b"DELETE /x", False),  # Go looks for these five only
        (b"PATCH /x", False),
        (b"\x16\x03\x01\x02\x00", False),
        (b"GET", False),
    ],
)
def test_what_looks_like_http(first: bytes, http: bool) -> None:
    assert looks_like_http(first) is http


class Echo(asyncio.Protocol):
    """Stands for the HTTP server: echoes, and says it met a connection."""

    made: list[asyncio.Transport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Echo.made.append(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Served:
    def __init__(self, listener: TLSListener, certificates: ServingCertificates, pki: TestPKI, files: dict[str, Path]):
        self.listener = listener
        self.certificates = certificates
        self.pki = pki
        self.files = files
        self.port = listener.sockets[0].getsockname()[1]
        self.denied: list[object] = []

    async def tls(self, pki: TestPKI | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ctx = (pki or self.pki).client_ssl_context()
        return await asyncio.open_connection("127.0.0.1", self.port, ssl=ctx, server_hostname="localhost")

    async def raw(self, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        try:
            return await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            return b"<reset>"
        finally:
            writer.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    Echo.made = []
    pki = TestPKI.create()
    files = pki.write(tmp_path / "pki")
    flags = replace(Flags(), tls_cert_file=str(files["server.crt"]), tls_private_key_file=str(files["server.key"]))
    settings = serving_tls(flags, str(tmp_path), [])
    assert settings is not None
    certificates = ServingCertificates(settings)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    holder: list[Served] = []

    def admits(peer: object) -> bool:
        if isinstance(peer, tuple) and peer[0] == "127.0.0.3":
            holder[0].denied.append(peer)
            return False
        return True

    listener = TLSListener(sock, Echo, certificates, admits)
    await listener.start_serving()
    holder.append(Served(listener, certificates, pki, files))
    try:
        yield holder[0]
    finally:
        listener.close()
        await listener.wait_closed()
        for transport in Echo.made:
            transport.close()


async def test_tls_clients_reach_the_server(served: Served) -> None:
    reader, writer = await served.tls()
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    writer.close()
    assert served.listener.is_serving()


async def test_plain_http_gets_gos_answer_and_reaches_nothing(served: Served) -> None:
    answer = await served.raw(b"GET /api/v1/secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n")
    assert (
        answer
        == PLAIN_HTTP_ANSWER
        == (b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
    )
    assert await served.raw(b"hello, not TLS") in (b"", b"<reset>")
    assert Echo.made == []


async def test_a_denied_client_is_closed_before_the_handshake(served: Served) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.3", 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.open_connection(sock=sock, ssl=served.pki.client_ssl_context(), server_hostname="localhost")
    assert len(served.denied) == 1 and Echo.made == []


async def test_a_silent_client_is_closed_after_the_handshake_timeout(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tls_module, "HANDSHAKE_TIMEOUT", 0.3)
    caplog.set_level(logging.INFO, "kproxy")
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert "TLS handshake error from 127.0.0.1:" in caplog.text and "no handshake within" in caplog.text


async def test_a_failed_handshake_is_logged_as_go_logs_it(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "kproxy")
    with pytest.raises(ssl.SSLError):
        await served.tls(TestPKI.create())  # a client that does not trust kproxy's CA
    await asyncio.sleep(0.1)
    assert "TLS handshake error from 127.0.0.1:" in caplog.text and Echo.made == []


async def test_a_reload_changes_new_handshakes_only(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    old_reader, old_writer = await served.tls()
    old_serial = serial(old_writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
    assert served.certificates.reload() is False  # nothing changed
    fresh = issue(served.pki, name("kproxy-2"), server=True)
    served.files["server.crt"].write_bytes(fresh.cert_pem)
    # Half a rotation: the new certificate with the old key keeps the old pair.
    assert served.certificates.reload() is False
    assert "Keeping the TLS certificate in force: --tls-private-key-file" in caplog.text
    assert "BEGIN" not in caplog.text
    served.files["server.key"].write_bytes(fresh.key_pem)
    assert served.certificates.reload() is True
    reader, writer = await served.tls()
    assert serial(writer.get_extra_info("ssl_object").getpeercert(binary_form=True)) == serial(fresh.cert_pem)
    # The connection opened before the reload carries on, with its certificate.
    old_writer.write(b"still")
    assert await old_reader.readexactly(5) == b"still"
    assert serial(old_writer.get_extra_info("ssl_object").getpeercert(binary_form=True)) == old_serial
    writer.close()
    old_writer.close()


async def test_close_stops_accepting_and_ends_handshakes_in_progress(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)  # never says a word
    await asyncio.sleep(0.1)
    served.listener.close()
    await asyncio.wait_for(served.listener.wait_closed(), 5)
    assert not served.listener.is_serving() and served.listener.sockets == ()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", served.port)
