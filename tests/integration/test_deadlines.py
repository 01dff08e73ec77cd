"""The client deadlines of the real kproxy process: --read-header-timeout and
--idle-timeout (short here, so the tests are quick), what they end, what they never
touch (a watch, an upgraded session), and 0 turning them off."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy

GUARD = 20.0  # seconds: a hang guard, never a timing assertion


async def short(start_kproxy: StartKproxy, kubeconfig: Path, *extra: str) -> KproxyProcess:
    return await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--read-header-timeout=1s", "--idle-timeout=1s", *extra
    )  # fmt: skip


async def test_a_trickled_head_is_cut_off_with_408(start_kproxy: StartKproxy, kubeconfig: Path) -> None:
    # One header line every 200 ms: each read is quick, the head never ends; the
    # deadline is for the whole head, so the trickle does not extend it.
    kp = await short(start_kproxy, kubeconfig)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\n")
    answering = asyncio.create_task(reader.read())  # everything until kproxy closes
    sent = 0
    for sent in range(100):  # 20 s at most
        if answering.done():
            break
        writer.write(b"X-Trickle-%d: x\r\n" % sent)
        await asyncio.sleep(0.2)
    answer = await asyncio.wait_for(answering, GUARD)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert sent < 99  # cut off long before the trickle ended


async def test_a_connection_that_says_nothing_is_closed(start_kproxy: StartKproxy, kubeconfig: Path) -> None:
    kp = await short(start_kproxy, kubeconfig)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    assert await asyncio.wait_for(reader.read(), GUARD) == b""  # closed, no answer
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(start_kproxy: StartKproxy, kubeconfig: Path) -> None:
    kp = await short(start_kproxy, kubeconfig)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(await reader.readexactly(length))["major"] == "1"
    assert await asyncio.wait_for(reader.read(), GUARD) == b""  # then nothing more: closed
    writer.close()
    # kproxy keeps serving others.
    async with aiohttp.ClientSession() as session, session.get(f"{kp.url}/version") as resp:
        assert resp.status == 200


async def test_a_poller_repeating_one_request_is_not_idle(start_kproxy: StartKproxy, kubeconfig: Path) -> None:
    # The same bytes again are read without llhttp (kproxy.http.parsing): each is still
    # a new request for the idle deadline, which must not count from the first one.
    kp = await short(start_kproxy, kubeconfig)
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    for _ in range(15):  # 3 s: three times the idle deadline, a request every 0.2 s
        writer.write(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert head.startswith(b"HTTP/1.1 200 OK") and json.loads(await reader.readexactly(length))["major"] == "1"
        await asyncio.sleep(0.2)
    assert await asyncio.wait_for(reader.read(), GUARD) == b""  # idle at last: closed
    writer.close()


async def test_a_watch_and_an_upgraded_session_outlive_both_deadlines(
    start_kproxy: StartKproxy, kubeconfig: Path, api: FakeAPIServer
) -> None:
    kp = await short(start_kproxy, kubeconfig, "--reject-paths=")
    url = f"{kp.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={api.store.resource_version()}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{kp.url}/api/v1/namespaces/default/pods") as resp:
            pods = await resp.json()
        name = pods["items"][0]["metadata"]["name"]
        reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
        writer.write(
            f"POST /api/v1/namespaces/default/pods/{name}/exec?command=echo HTTP/1.1\r\nHost: localhost\r\n"
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)).startswith(b"HTTP/1.1 101")
        async with session.get(url) as watch:
            assert watch.status == 200
            await asyncio.sleep(3)  # three times either deadline, nothing on the wire
            api.store.create("configmaps", {"metadata": {"name": "late"}, "data": {}}, "default")
            event = json.loads(await asyncio.wait_for(watch.content.readline(), GUARD))
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "late"
        writer.write(b"still here")  # the exec echo answers: the session was not cut
        assert await asyncio.wait_for(reader.readexactly(10), GUARD) == b"still here"
        writer.close()


async def test_zero_turns_the_deadlines_off(start_kproxy: StartKproxy, kubeconfig: Path) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--read-header-timeout=0", "--idle-timeout=0"
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /version HTTP/1.1\r\n")
    await asyncio.sleep(2.5)  # longer than the 1 s deadlines the other tests end connections with
    writer.write(b"Host: localhost\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")
