"""kproxy.proxy.fast without sockets: what the fast path takes and declines, and each way
an exchange hands back to the connection (tests/proxy/fakes.py stands in for both sides).

tests/proxy/test_fast_embedded.py checks the same path end to end against the fake API
server; these tests pin the contract step by step.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kproxy.http import Request
from kproxy.policy.audit_id import LINE_LENGTH, id_of
from kproxy.policy.ranges import AuthorizedRanges
from kproxy.proxy.access import ClientGate
from kproxy.proxy.fast import ClientState, FastPath, Forward, ForwardCache
from kproxy.proxy.relay import Relay
from tests.proxy.fakes import FakeClient, FakePool, Script, drop_connection, scripted, upstream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
GET = b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\n"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def fast_path(pool: FakePool, *, ranges: str = "", remember: bool = True) -> FastPath:
    cache = ForwardCache()
    if remember:
        cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
        cache.remember("HEAD", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
        cache.remember("POST", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
    gate = ClientGate(AuthorizedRanges.parse(ranges))
    return FastPath(Relay(upstream(), pool), cache, gate)  # type: ignore[arg-type]


async def test_a_request_seen_before_goes_out_and_its_answer_comes_back_on_callbacks() -> None:
    script = Script([OK])
    conn = scripted(script, reused=True)
    pool = FakePool(idle=[conn])
    client = FakeClient()
    assert fast_path(pool)(client.request(GET))
    assert isinstance(client.attachment, ClientState) and client.attachment.in_flight is conn
    await settle()
    assert client.sent == [(200, b"", b"{}")] and client.done == 1 and not client.fallbacks
    assert pool.released == [conn] and client.attachment.in_flight is None


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"GET /api/v1/other HTTP/1.1\r\nHost: localhost:8001\r\n", "never forwarded before"),
        (b"POST /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nContent-Length: 0\r\n", "not GET/HEAD/OPTIONS"),
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: elsewhere\r\n", "another Host"),
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: a\r\nHost: b\r\n", "a malformed head"),
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nConnection: Upgrade\r\n", "an upgrade"),
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nContent-Length: 5\r\n", "a body"),
        # A browser's request meets the cross-origin guard and may need a CORS grant.
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nOrigin: http://localhost:8001\r\n", "Origin"),
        (b"GET /api/v1/pods HTTP/1.1\r\nOrigin: http://evil.example\r\nHost: localhost:8001\r\n", "Origin"),
    ],
)
async def test_what_the_fast_path_declines(head: bytes, why: str) -> None:
    pool = FakePool(idle=[scripted(Script([OK]), reused=True)])
    assert not fast_path(pool)(FakeClient().request(head)), why


async def test_declined_without_an_idle_connection_or_with_a_client_check() -> None:
    assert not fast_path(FakePool())(FakeClient().request(GET))
    pool = FakePool(idle=[scripted(Script([OK]), reused=True)])
    assert not fast_path(pool, ranges="10.0.0.0/8")(FakeClient().request(GET))


async def test_the_same_request_again_reuses_the_head_built_for_it() -> None:
    scripts = [Script([OK]), Script([OK]), Script([OK])]
    pool = FakePool(idle=[scripted(s, reused=True) for s in reversed(scripts)])
    client = FakeClient()
    fast = fast_path(pool)
    for head in (GET, GET, GET.replace(b"Host: localhost:8001\r\n", b"Host: localhost:8001\r\nX-A: 1\r\n")):
        if b"X-A" in head:
            fast._cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
        assert fast(client.request(head))
        await settle()
    assert isinstance(client.attachment, ClientState)
    heads = [s.heads[0] for s in scripts]
    # The same head, but each request with an Audit-Id of its own, spliced in at the end.
    assert heads[0][:-LINE_LENGTH] == heads[1][:-LINE_LENGTH] and b"X-A: 1" in heads[2] and client.done == 3
    ids = [id_of(h) for h in heads]
    assert all(h[-LINE_LENGTH:].startswith(b"Audit-Id: ") for h in heads) and len(set(ids)) == 3
    assert all(uuid.UUID(i.decode()).version == 4 for i in ids)


async def test_a_streamed_answer_continues_on_the_task_and_the_client_leaving_aborts_it() -> None:
    def reply(conn):  # type: ignore[no-untyped-def]
        conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")

    conn = scripted(Script([reply]), reused=True)
    client = FakeClient()
    assert fast_path(FakePool(idle=[conn]))(client.request(GET))
    await settle()
    [resume] = client.fallbacks
    assert resume is not None
    task = asyncio.ensure_future(resume())
    await settle()
    assert client.streamed == [b"abc"]
    assert isinstance(client.attachment, ClientState)
    client.attachment.client_gone()  # what the connection does when the client leaves
    await settle()
    assert conn.closed and task.done()


async def test_a_stale_idle_connection_starts_the_request_over() -> None:
    client = FakeClient()
    assert fast_path(FakePool(idle=[scripted(Script([drop_connection]), reused=True)]))(client.request(GET))
    await settle()
    assert client.fallbacks == [None] and client.sent == []


async def test_an_upstream_failure_after_bytes_is_a_status_not_a_retry() -> None:
    def half(conn):  # type: ignore[no-untyped-def]
        conn.data_received(b"HTTP/1.1 2")
        conn.transport.close()

    client = FakeClient()
    assert fast_path(FakePool(idle=[scripted(Script([half]), reused=True)]))(client.request(GET))
    await settle()
    [resume] = client.fallbacks
    assert resume is not None
    answer = await resume()
    assert answer.status == 502 and b"closed the connection" in answer.body  # type: ignore[union-attr]


async def test_head_answers_are_read_without_a_body() -> None:
    conn = scripted(Script([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"]), reused=True)
    pool = FakePool(idle=[conn])
    client = FakeClient()
    request: Request = client.request(GET.replace(b"GET", b"HEAD"))
    assert fast_path(pool)(request)
    await settle()
    assert client.done == 1 and pool.released == [conn]


def test_the_cache_is_bounded() -> None:
    cache = ForwardCache(limit=2)
    for i in range(3):
        cache.remember("GET", f"/{i}", "h", Forward(b"/", None))
    assert cache.get("GET", "/2", "h") is not None and cache.get("GET", "/0", "h") is None


def test_client_gone_without_an_exchange_is_harmless() -> None:
    state = ClientState()
    state.client_gone()
    assert state.in_flight is None


def again(request: Request) -> Request:
    """The same request read again byte for byte: kproxy.http.parsing makes it with the
    header list of the one before."""
    copy = Request(request.protocol, request.raw_path, request.method, request.version, request.raw_headers, True)
    copy.end()
    return copy


async def test_a_request_read_again_is_taken_on_its_last_verdict_while_the_configuration_stands() -> None:
    pool = FakePool(idle=[scripted(Script([OK]), reused=True) for _ in range(4)])
    client = FakeClient()
    fast = fast_path(pool)
    first = client.request(GET)
    assert fast(first)
    await settle()
    fast._cache.verdicts.clear()  # (the cache's bound was reached: it forgets, the verdict holds)
    assert fast(again(first)), "a repeat is taken on the verdict it had"
    await settle()
    # The same bytes, but parsed anew (another header list): the verdict is looked up.
    assert not fast(client.request(GET))
    # A reload: the verdicts of the old configuration are no longer taken.
    fast._cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
    last = client.request(GET)
    assert fast(last)
    await settle()
    fast.use(Relay(upstream(), pool))  # type: ignore[arg-type]
    fast._cache.verdicts.clear()
    assert not fast(again(last))
    # An authorized-ranges check that applies now declines a repeat as any request.
    fast._cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None))
    last = client.request(GET)
    assert fast(last)
    await settle()
    fast._gate = ClientGate(AuthorizedRanges.parse("10.0.0.0/8"))
    assert not fast(again(last))
    assert client.done == 4 and not client.fallbacks


async def test_a_watch_read_again_goes_to_the_http2_lane_once_it_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FakePool(idle=[scripted(Script([OK]), reused=True) for _ in range(2)])
    client = FakeClient()
    fast = fast_path(pool, remember=False)
    fast._cache.remember("GET", "/api/v1/pods", "localhost:8001", Forward(b"/api/v1/pods", None, long_running=True))
    first = client.request(GET)
    assert fast(first)
    await settle()
    monkeypatch.setattr(Relay, "h2_ready", property(lambda self: True))
    assert not fast(again(first))
