"""The fake API server's HTTP/2 front against real clients: kubectl 1.32 (Go's HTTP/2
client, as against kube-apiserver) and the h2 library, over TLS with client certificates.

kubectl is the judge: with ``http2=True`` it speaks HTTP/2 to the fake for everything
but upgrades, which Go sends over HTTP/1.1 (ALPN ``http/1.1``) on their own connection.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from kproxy.testing import FakeAPIServer, TestPKI
from kproxy.testing.certs import CLIENT_CN
from tests.testing.test_fake_apiserver import POD, run_kubectl


@pytest.fixture
async def fake(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    async with FakeAPIServer(pki=pki, http2=True, max_streams=7) as server:
        yield server


async def test_kubectl_speaks_http2_to_it(fake: FakeAPIServer, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path, auth="cert")
    code, out, err = await run_kubectl(kubeconfig, tmp_path, "get", "pods", "-n", "default", "-o", "name")
    assert (code, err) == (0, ""), err
    assert f"pod/{POD}" in out.split()
    assert fake.h2 is not None and fake.h2.connections >= 1 and fake.h2.streams_opened >= 2  # discovery, then pods
    assert {r.user for r in fake.requests} == {CLIENT_CN}  # the certificate of the TLS connection, per stream


async def test_kubectl_exec_goes_over_http1_beside_it(fake: FakeAPIServer, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path, auth="cert")
    code, out, err = await run_kubectl(kubeconfig, tmp_path, "exec", POD, "--", "echo", "over http/1.1")
    assert (code, out, err) == (0, "over http/1.1\n", "")
    assert fake.h2 is not None and fake.h2.http1_connections >= 1


async def test_the_stream_limit_is_announced_and_answers_are_whole(fake: FakeAPIServer) -> None:
    assert fake.pki is not None
    ctx = fake.pki.client_ssl_context(fake.pki.client)
    ctx.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port, ssl=ctx, server_hostname="127.0.0.1")
    obj = writer.get_extra_info("ssl_object")
    assert isinstance(obj, ssl.SSLObject) and obj.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"127.0.0.1"), (b":path", b"/version")]
    conn.send_headers(stream, fields, end_stream=True)
    writer.write(conn.data_to_send())
    limit, status, body, ended = None, None, b"", False
    try:
        while not ended:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the fake closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                    limit = changed.new_value if changed else limit
                elif isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers or ())[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data or b""
                    conn.acknowledge_received_data(event.flow_controlled_length or 0, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    assert (limit, status) == (7, b"200")
    assert json.loads(body)["gitVersion"].startswith("v1.32")
