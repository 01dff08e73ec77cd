"""kproxy.proxy.upgrade without sockets: the byte splice against a scripted upstream.

The client's bytes after its head are held until the API server agrees (101), then pass
both ways untouched; an error answer is relayed and ends the connection; a 2xx/3xx is
client-go's "invalid upgrade response"; a 401 to a refreshable credential asks again.
"""

from __future__ import annotations

import asyncio

import pytest

from kproxy.errors import UpstreamError
from kproxy.proxy.relay import Relay
from kproxy.proxy.upgrade import upgrade
from kproxy.upstream.connection import UpstreamConnection
from tests.proxy.fakes import FakeClient, FakePool, Script, scripted, upstream
from tests.proxy.test_relay import Rotating

HEAD = b"POST /api/v1/namespaces/d/pods/p/exec HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_101_splices_both_ways_and_early_client_bytes_wait_for_it() -> None:
    def agree(conn: UpstreamConnection) -> None:
        conn.data_received(SWITCH + b"server-first")

    script = Script([agree])
    conn = scripted(script)
    client = FakeClient()
    request = client.request(HEAD)
    task = asyncio.ensure_future(upgrade(Relay(upstream(), FakePool(new=[conn])), request, b"/exec"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert client.sink is not None
    client.sink.feed_data(b"early")  # before the 101: held
    await settle()
    assert client.streamed[0] == SWITCH + b"server-first"  # the API server's 101, as it came
    transport = conn.transport
    assert transport is not None
    assert bytes(transport.data).endswith(b"\r\n\r\nearly")  # type: ignore[attr-defined]
    client.sink.feed_data(b"later")
    conn.data_received(b"more from the server")
    await settle()
    assert bytes(transport.data).endswith(b"earlylater")  # type: ignore[attr-defined]
    assert client.streamed[-1] == b"more from the server"
    conn.connection_lost(None)  # the server ends the session
    assert (await asyncio.wait_for(task, 5)).status == 101


async def test_an_error_answer_is_relayed_and_ends_the_connection() -> None:
    missing = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    client = FakeClient()
    relay = Relay(upstream(), FakePool(new=[scripted(Script([missing]))]))  # type: ignore[arg-type]
    sent = await upgrade(relay, client.request(HEAD), b"/exec")
    assert sent.status == 404 and client.sent == [(404, b"Content-Type: application/json\r\n", b"")]
    assert client.streamed == [b"{}", b"<end>"]


@pytest.mark.parametrize("status", [200, 302])
async def test_a_success_that_is_not_101_is_an_invalid_upgrade(status: int) -> None:
    answer = b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status
    relay = Relay(upstream(), FakePool(new=[scripted(Script([answer]))]))  # type: ignore[arg-type]
    with pytest.raises(UpstreamError, match=f"invalid upgrade response: status code {status}"):
        await upgrade(relay, FakeClient().request(HEAD), b"/exec")


async def test_a_401_to_a_refreshable_credential_asks_again() -> None:
    refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    first, second = Script([refused]), Script([lambda conn: conn.data_received(SWITCH)])
    again = scripted(second)
    relay = Relay(upstream(auth=Rotating(), auth_header=b""), FakePool(new=[scripted(first), again]))  # type: ignore[arg-type]
    client = FakeClient()
    task = asyncio.ensure_future(upgrade(relay, client.request(HEAD), b"/exec"))
    await settle()
    assert b"Bearer old" in first.heads[0] and b"Bearer new" in second.heads[0]
    assert client.streamed[0].startswith(b"HTTP/1.1 101")
    again.connection_lost(None)
    assert (await asyncio.wait_for(task, 5)).status == 101
