"""The HTTP/2 lane through the real kproxy process, against the fake API server speaking
HTTP/2 (TLS with client certificates, ALPN h2 and http/1.1, a stream limit): watches and
followed logs share HTTP/2 connections, ordinary requests stay on HTTP/1.1, and GOAWAY,
stream resets and protocol errors cost only the streams they touch."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, TestPKI
from kproxy.testing.certs import CLIENT_CN
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def h2api(pki: TestPKI, request: pytest.FixtureRequest) -> AsyncIterator[FakeAPIServer]:
    limit = getattr(request, "param", 100)
    server = FakeAPIServer(pki=pki, tokens=("test-token",), http2=True, max_streams=limit)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def h2proxy(h2api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    # Client certificates: the fake authenticates each HTTP/2 stream by its connection's.
    kubeconfig = h2api.kubeconfig(tmp_path, auth="cert")
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig))


def watch_url(proxy: KproxyProcess, api: FakeAPIServer) -> str:
    return f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={api.store.resource_version()}"


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, object]:
    line = await asyncio.wait_for(resp.content.readline(), 10)
    assert line, "the watch ended"
    event: dict[str, object] = json.loads(line)
    return event


def h2(api: FakeAPIServer):  # type: ignore[no-untyped-def]
    assert api.h2 is not None
    return api.h2


@pytest.mark.parametrize("h2api", [2], indirect=True)
async def test_watches_share_http2_connections_up_to_the_server_limit(
    h2proxy: KproxyProcess, h2api: FakeAPIServer
) -> None:
    url = watch_url(h2proxy, h2api)
    async with aiohttp.ClientSession() as session:
        responses = [await session.get(url) for _ in range(5)]
        try:
            assert [r.status for r in responses] == [200] * 5
            await until(lambda: h2api.open_watches() == 5, "5 open watches")
            h2api.store.create("configmaps", {"metadata": {"name": "shared"}}, "default")
            for resp in responses:
                event = await next_event(resp)
                assert event["type"] == "ADDED"
        finally:
            for resp in responses:
                resp.release()
    # Five streams over three connections: the server allows two each.
    assert h2(h2api).streams_opened == 5
    assert h2(h2api).connections == 3
    watches = [r for r in h2api.requests if r.query_string.startswith("watch=true")]
    assert {r.user for r in watches} == {CLIENT_CN}


@pytest.mark.parametrize("h2api", [2], indirect=True)
async def test_watches_opened_at_once_dial_one_connection_at_a_time(
    h2proxy: KproxyProcess, h2api: FakeAPIServer
) -> None:
    url = watch_url(h2proxy, h2api)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        responses = await asyncio.gather(*(session.get(url) for _ in range(10)))
        try:
            assert [r.status for r in responses] == [200] * 10
            await until(lambda: h2api.open_watches() == 10, "10 open watches")
        finally:
            for resp in responses:
                resp.release()
    # Ten streams, two to a connection: five connections, never one more.
    assert (h2(h2api).streams_opened, h2(h2api).connections) == (10, 5)


async def test_kubectl_get_watch_through_the_lane(h2proxy: KproxyProcess, h2api: FakeAPIServer, tmp_path: Path) -> None:
    home = tmp_path / "kubectl-home"
    home.mkdir()
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--server",
        h2proxy.url,
        "get",
        "configmaps",
        "-n",
        "default",
        "--watch",
        "-o",
        "name",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=kubectl_env(home),
    )
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.startswith(b"configmap/")  # the list comes first
        await until(lambda: h2api.open_watches() == 1, "kubectl's watch")
        h2api.store.create("configmaps", {"metadata": {"name": "seen-by-kubectl"}}, "default")
        lines = [first]
        while b"configmap/seen-by-kubectl\n" not in lines:
            assert len(lines) < 5, lines
            lines.append(await asyncio.wait_for(proc.stdout.readline(), 10))
    finally:
        proc.kill()  # by its PID
        await proc.wait()
    assert h2(h2api).streams_opened == 1  # the watch; the list before it went over HTTP/1.1


async def test_ordinary_requests_stay_on_http1(h2proxy: KproxyProcess, h2api: FakeAPIServer) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{h2proxy.url}/api/v1/namespaces") as resp:
                assert resp.status == 200
                assert (await resp.json())["kind"] == "NamespaceList"
    assert h2(h2api).streams_opened == 0
    assert h2(h2api).http1_connections >= 1


async def test_followed_logs_go_over_http2(h2proxy: KproxyProcess, h2api: FakeAPIServer) -> None:
    pod = h2api.store.list("pods", "default")["items"][0]["metadata"]["name"]
    url = f"{h2proxy.url}/api/v1/namespaces/default/pods/{pod}/log?follow=true"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            lines = [await asyncio.wait_for(resp.content.readline(), 10) for _ in range(3)]
            assert all(lines)
        async with session.get(f"{h2proxy.url}/api/v1/namespaces/default/pods/{pod}/log") as resp:
            assert resp.status == 200
            await resp.read()
    assert h2(h2api).streams_opened == 1  # the followed log only


async def test_a_client_leaving_resets_its_stream_only(h2proxy: KproxyProcess, h2api: FakeAPIServer) -> None:
    url = watch_url(h2proxy, h2api)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as staying:
            async with session.get(url) as leaving:
                assert leaving.status == 200
                await until(lambda: h2api.open_watches() == 2, "2 open watches")
            # RST_STREAM: the fake's handler for that stream is cancelled, its watch closes.
            await until(lambda: h2api.open_watches() == 1, "the left watch to close")
            h2api.store.create("configmaps", {"metadata": {"name": "after"}}, "default")
            assert (await next_event(staying))["type"] == "ADDED"
    assert h2(h2api).connections == 1


async def test_goaway_lets_streams_finish_and_new_ones_use_another_connection(
    h2proxy: KproxyProcess, h2api: FakeAPIServer
) -> None:
    url = watch_url(h2proxy, h2api)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as first:
            await until(lambda: h2api.open_watches() == 1, "the first watch")
            h2(h2api).goaway()
            async with session.get(url) as second:
                assert second.status == 200
                await until(lambda: h2api.open_watches() == 2, "the second watch")
                h2api.store.create("configmaps", {"metadata": {"name": "after-goaway"}}, "default")
                # The first stream is below the GOAWAY's last-stream-id: it goes on.
                assert (await next_event(first))["type"] == "ADDED"
                assert (await next_event(second))["type"] == "ADDED"
    assert h2(h2api).connections == 2


@pytest.mark.parametrize(
    "fault",
    ["goaway-refusing-all", "reset", "protocol-error"],
)
async def test_a_misbehaving_server_costs_only_the_affected_streams(
    h2proxy: KproxyProcess, h2api: FakeAPIServer, fault: str
) -> None:
    url = watch_url(h2proxy, h2api)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as cut:
            assert cut.status == 200
            await until(lambda: h2api.open_watches() == 1, "the watch")
            front = h2(h2api)
            if fault == "goaway-refusing-all":
                front.goaway(last_stream_id=0)
            elif fault == "reset":
                assert front.reset_streams() == 1
            else:
                front.break_protocol()
            # The head was out: the client sees its answer cut, never a clean end.
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(cut.content.read(), 10)
        # New requests reconnect; ordinary ones never noticed.
        async with session.get(url) as again:
            assert again.status == 200
            await until(lambda: h2api.open_watches() >= 1, "a new watch")
            h2api.store.create("configmaps", {"metadata": {"name": f"after-{fault}"}}, "default")
            assert (await next_event(again))["type"] == "ADDED"
        async with session.get(f"{h2proxy.url}/api/v1/namespaces") as resp:
            assert resp.status == 200


async def test_a_goaway_storm_is_a_502_after_a_few_attempts_then_it_recovers(
    h2proxy: KproxyProcess, h2api: FakeAPIServer
) -> None:
    url = watch_url(h2proxy, h2api)
    h2(h2api).goaway_storm = True
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 502
            status = await resp.json()
        assert status["kind"] == "Status" and "GOAWAY" in status["message"], status
        attempts = h2(h2api).connections
        assert 1 < attempts <= 5  # sent again elsewhere, a few times, never in a loop
        h2(h2api).goaway_storm = False
        async with session.get(url) as resp:
            assert resp.status == 200
            await until(lambda: h2api.open_watches() == 1, "the watch")


async def test_a_slow_client_stalls_its_own_stream_only(h2proxy: KproxyProcess, h2api: FakeAPIServer) -> None:
    url = watch_url(h2proxy, h2api)
    target = url.removeprefix(h2proxy.url)
    # A client that asks for a watch and never reads: its socket buffers fill, then
    # kproxy's stream window (4 MiB), then the fake's; the other watch must not notice.
    stuck = socket.create_connection(("127.0.0.1", h2proxy.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as reader:
                await until(lambda: h2api.open_watches() == 2, "two watches")
                blob = "x" * (200 * 1024)
                for i in range(60):  # 12 MB of events, three times the stream window
                    h2api.store.create("configmaps", {"metadata": {"name": f"big-{i}"}, "data": {"b": blob}}, "default")
                    event = await next_event(reader)
                    assert event["type"] == "ADDED"
                # The stuck stream's window is shut: the fake holds its answer back.
                await until(lambda: h2(h2api).stalled_streams() == 1, "the stuck stream to stall")
    finally:
        stuck.close()
    await until(lambda: h2api.open_watches() == 0, "both watches to close")


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_http2_can_be_disabled(h2api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy, how: str) -> None:
    kubeconfig = h2api.kubeconfig(tmp_path, auth="cert")
    args = ["--port", "0", "--kubeconfig", str(kubeconfig)]
    env = dict(os.environ)
    if how == "flag":
        args.append("--disable-http2")
    else:
        env["DISABLE_HTTP2"] = "1"  # client-go: any value
    kp = await start_kproxy(*args, env=env)
    async with aiohttp.ClientSession() as session:
        async with session.get(watch_url(kp, h2api)) as resp:
            assert resp.status == 200
            await until(lambda: h2api.open_watches() == 1, "the watch")
            h2api.store.create("configmaps", {"metadata": {"name": "http1"}}, "default")
            assert (await next_event(resp))["type"] == "ADDED"
    assert h2(h2api).streams_opened == 0 and h2(h2api).connections == 0
