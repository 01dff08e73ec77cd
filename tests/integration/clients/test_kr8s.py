"""kr8s (asyncio) through the real kproxy process.

kr8s's own object API: create, refresh, merge and JSON patches, delete; lists with
label selectors; a watch from a resource version, and what kr8s does with a 410 (it
restarts the watch); logs with follow; exec with stdout, stderr and the exit code (kr8s
0.20 sends stdin only over ``v5.channel.k8s.io``, which it does not offer);
port-forward (``v4.channel.k8s.io`` over WebSocket). kr8s has no server-side apply,
strategic patch or dry-run in its object API; those go through its raw ``call_api``.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kr8s.asyncio  # noqa: E402
import pytest
from kr8s._exceptions import ExecError  # noqa: E402
from kr8s.asyncio.objects import ConfigMap, Pod  # noqa: E402

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess
from tests.integration.clients.conftest import NAMESPACE, POD, configmap


@pytest.fixture
async def k(proxy: KproxyProcess) -> AsyncIterator[Any]:
    api = await kr8s.asyncio.api(url=proxy.url)
    yield api
    if api._session is not None:  # kr8s keeps its httpx client for the life of the loop: close it
        await api._session.aclose()
    await asyncio.sleep(0.1)  # let the closed connections' transports finish closing on this loop


async def test_objects_patches_and_raw_calls(k: Any, api: FakeAPIServer) -> None:
    cm = await ConfigMap(configmap("one", app="x"), namespace=NAMESPACE, api=k)
    await cm.create()
    await cm.patch({"data": {"m": "1"}})
    assert cm.raw["data"] == {"k": "v", "m": "1"}
    await cm.patch([{"op": "replace", "path": "/data/k", "value": "2"}], type="json")
    await cm.refresh()
    assert cm.raw["data"] == {"k": "2", "m": "1"}
    assert api.store.get("configmaps", "one", NAMESPACE)["data"] == {"k": "2", "m": "1"}
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {a: '1'}\n"
    async with k.call_api(
        "PATCH",
        version="v1",
        url="configmaps/applied",
        namespace=NAMESPACE,
        params={"fieldManager": "kr8s", "dryRun": "All"},
        content=body,
        headers={"Content-Type": "application/apply-patch+yaml"},
    ) as response:
        assert response.status_code == 201 and response.json()["data"] == {"a": "1"}
    assert not await ConfigMap(configmap("applied"), namespace=NAMESPACE, api=k).exists()  # a dry run
    await cm.delete()
    assert not await cm.exists()


async def test_lists_watch_and_410(k: Any, api: FakeAPIServer) -> None:
    pods = [p async for p in k.async_get("pods", namespace=NAMESPACE, label_selector={"app": "nginx"})]
    assert sorted(p.name for p in pods)[0] == POD
    nodes = [n async for n in k.async_get("nodes")]
    assert nodes[0].raw["status"]["nodeInfo"]["machineID"]
    since = api.store.resource_version()
    api.store.create("configmaps", configmap("w"), NAMESPACE)
    api.store.delete("configmaps", "w", NAMESPACE)
    seen = []
    async for event, obj in k.async_watch("configmaps", namespace=NAMESPACE, since=since):
        seen.append((event, obj.name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "w"), ("DELETED", "w")]
    # A 410: kr8s restarts its watch (at the version it had: a client must re-list itself).
    api.store.compact()
    before = len(api.requests)

    async def watch_stale() -> None:
        async for _ in k.async_watch("configmaps", namespace=NAMESPACE, since=since):
            pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watch_stale(), 2)
    restarts = [r for r in api.requests[before:] if "watch" in r.query_string and since in r.query_string]
    assert len(restarts) >= 2


async def test_logs_exec_and_port_forward(k: Any) -> None:
    pod = await Pod.get(POD, namespace=NAMESPACE, api=k)
    lines = []
    async for line in pod.async_logs(follow=True, tail_lines=1):
        lines.append(line)
        if len(lines) == 3:
            break
    assert [line.split()[-1] for line in lines] == ["9", "10", "11"]
    done = await pod.async_exec(["echo", "from kr8s"])
    assert (done.stdout, done.returncode) == (b"from kr8s\n", 0)
    # kr8s 0.20 offers only v4.channel.k8s.io and sends stdin only over v5: its own refusal.
    with pytest.raises(BaseExceptionGroup) as refused:  # kr8s raises it from inside an anyio task group
        await pod.async_exec(["cat"], stdin="x")
    assert refused.group_contains(ExecError, match="Stdin is not supported with protocol v4.channel.k8s.io")
    failed = await pod.async_exec(["ls", "/nope"], check=False)
    assert (failed.returncode, failed.stderr) == (2, b"ls: cannot access '/nope': No such file or directory\n")
    # kr8s picks a random local port it saw free, then binds it: another process may take
    # it in between (EADDRINUSE). That race is kr8s's, not kproxy's: pick again, a few times.
    for attempt in range(5):
        try:
            async with pod.portforward(remote_port=80, local_port=None) as port:
                async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
                    assert resp.status == 200 and "Welcome to nginx!" in await resp.text()
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 4:
                raise
