"""kproxy.proxy.relay without sockets: the ordinary exchange against scripted upstream
connections (tests/proxy/fakes.py). What goes upstream, what the client gets, which
connection goes back to the pool, and Go's retry and 401 rules."""

from __future__ import annotations

import asyncio
import math

import pytest

from kproxy.credentials.sources import AuthSource
from kproxy.errors import UpstreamError
from kproxy.http import BrokenBody
from kproxy.proxy.relay import Relay
from tests.proxy.fakes import FakeClient, FakePool, Script, drop_connection, scripted, upstream

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def relay(pool: FakePool, **changes: object) -> Relay:
    return Relay(upstream(**changes), pool)  # type: ignore[arg-type]


async def test_an_answer_that_arrives_whole_goes_out_in_one_piece_and_the_connection_back() -> None:
    script = Script([OK])
    conn = scripted(script)
    pool = FakePool(new=[conn])
    client = FakeClient()
    r = relay(pool)
    request = client.request(b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\n")
    sent = await r.forward(request, b"/api/v1/pods")
    assert sent.status == 200
    assert client.sent == [(200, b"Content-Type: application/json\r\n", b"{}")]
    assert pool.released == [conn]
    [head] = script.heads
    assert head.startswith(b"GET /api/v1/pods HTTP/1.1\r\nHost: api.example:6443\r\n")
    assert b"Authorization: Bearer fixed\r\n" in head and b"X-Forwarded-For: 10.0.0.9\r\n" in head


async def test_a_streamed_answer_is_relayed_chunk_by_chunk() -> None:
    def reply(conn):  # type: ignore[no-untyped-def]
        conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        conn._loop.call_soon(conn.data_received, b"2\r\nde\r\n0\r\n\r\n")

    pool = FakePool(new=[scripted(Script([reply]))])
    client = FakeClient()
    request = client.request(b"GET /watch HTTP/1.1\r\nHost: h\r\n")
    assert (await relay(pool).forward(request, b"/watch")).status == 200
    assert client.sent == [(200, b"", b"")]
    assert client.streamed == [b"abc", b"de", b"<end>"]
    assert len(pool.released) == 1


async def test_a_stale_pooled_connection_is_retried_for_a_replayable_request() -> None:
    stale = scripted(Script([drop_connection]), reused=True)
    fresh_script = Script([OK])
    pool = FakePool(idle=[stale], new=[scripted(fresh_script)])
    client = FakeClient()
    request = client.request(b"GET /api HTTP/1.1\r\nHost: h\r\n")
    assert (await relay(pool).forward(request, b"/api")).status == 200
    assert pool.connects == 1 and len(fresh_script.heads) == 1


async def test_a_request_with_a_body_is_never_sent_twice() -> None:
    stale = scripted(Script([drop_connection]), reused=True)
    pool = FakePool(idle=[stale], new=[scripted(Script([OK]))])
    client = FakeClient()
    request = client.request(b"POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n", b"abc")
    with pytest.raises(UpstreamError, match="closed the connection before the response was complete"):
        await relay(pool).forward(request, b"/api")
    assert pool.connects == 0


async def test_a_malformed_answer_is_an_upstream_error_and_the_connection_is_dropped() -> None:
    conn = scripted(Script([b"HTTP/1.1 2x0 OK\r\n\r\n"]))
    pool = FakePool(new=[conn])
    client = FakeClient()
    with pytest.raises(UpstreamError, match="malformed HTTP response"):
        await relay(pool).forward(client.request(b"GET / HTTP/1.1\r\nHost: h\r\n"), b"/")
    assert pool.released == [] and conn.closed


async def test_an_answer_before_the_whole_body_leaves_the_connection_unpooled() -> None:
    early = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n"
    conn = scripted(Script([early]))
    pool = FakePool(new=[conn])
    client = FakeClient()
    request = client.request(b"POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n")
    request.complete = False  # the body is still on its way
    request._body = None
    assert (await relay(pool).forward(request, b"/api")).status == 413
    assert pool.released == [] and conn.transport.aborted  # type: ignore[union-attr]


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_body_that_breaks_off_aborts_the_upstream_before_it_is_complete(framing: str) -> None:
    # The server waits for the rest (it never answers): the relay must cut the upstream
    # connection itself, without the last chunk or before Content-Length bytes.
    script = Script([lambda conn: None])
    conn = scripted(script)
    pool = FakePool(new=[conn])
    client = FakeClient()
    framing_line = b"Transfer-Encoding: chunked\r\n" if framing == "chunked" else b"Content-Length: 100\r\n"
    request = client.request(b"POST /api HTTP/1.1\r\nHost: h\r\n" + framing_line)
    request.complete = False  # the body is still on its way
    request._body = None
    request.feed(b"b" * 10)
    forwarding = asyncio.ensure_future(relay(pool).forward(request, b"/api"))  # an awaitable, not a coroutine
    for _ in range(5):
        await asyncio.sleep(0)
    assert conn.transport is not None and b"bbbbbbbbbb" in conn.transport.data  # type: ignore[attr-defined]
    # Every cause (a parse error, the client's EOF, a reset, a timeout) cuts the request
    # the same way (tests/http/test_connection.py).
    request.cut()
    with pytest.raises(BrokenBody):
        await asyncio.wait_for(forwarding, 5)
    sent = conn.transport.data  # type: ignore[attr-defined]
    assert conn.transport.aborted and pool.released == []  # type: ignore[attr-defined]
    assert not sent.endswith(b"0\r\n\r\n") and sent.partition(b"\r\n\r\n")[2].count(b"b") == 10
    assert client.sent == []  # no answer of the relay's: the connection decides (400, or nothing)


class Rotating(AuthSource):
    """A credential that a 401 refreshes once."""

    refreshes_on_401 = True

    def __init__(self) -> None:
        self.line = b"Authorization: Bearer old\r\n"
        self.deadline = math.inf
        self.refreshed = 0

    async def fresh(self) -> bytes:
        return self.line

    async def after_401(self, used: bytes, started: float) -> bool:
        self.refreshed += 1
        self.line = b"Authorization: Bearer new\r\n"
        return True


async def test_a_401_to_a_refreshable_credential_is_retried_once_with_the_new_one() -> None:
    refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
    first, second = Script([refused]), Script([OK])
    again = scripted(second)
    pool = FakePool(new=[scripted(first), again])
    auth = Rotating()
    client = FakeClient()
    request = client.request(b"POST /api HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n", b"{}")
    sent = await relay(pool, auth=auth, auth_header=b"").forward(request, b"/api")
    assert sent.status == 200 and auth.refreshed == 1
    assert b"Bearer old" in first.heads[0] and b"Bearer new" in second.heads[0]
    assert again.transport.data.endswith(b"\r\n\r\n{}")  # type: ignore[union-attr] # the kept body went again


async def test_a_second_401_reaches_the_client() -> None:
    refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope"
    pool = FakePool(new=[scripted(Script([refused])), scripted(Script([refused]))])
    client = FakeClient()
    request = client.request(b"GET /api HTTP/1.1\r\nHost: h\r\n")
    sent = await relay(pool, auth=Rotating(), auth_header=b"").forward(request, b"/api")
    assert sent.status == 401 and client.sent[-1][2] == b"nope"


async def test_a_client_credential_passes_untouched_and_no_plugin_runs() -> None:
    script = Script([OK])
    pool = FakePool(new=[scripted(script)])
    auth = Rotating()
    auth.deadline = -math.inf  # would need a refresh if it were used
    client = FakeClient()
    request = client.request(b"GET /api HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer mine\r\n")
    await relay(pool, auth=auth, auth_header=b"").forward(request, b"/api")
    assert b"Authorization: Bearer mine\r\n" in script.heads[0] and b"old" not in script.heads[0]
