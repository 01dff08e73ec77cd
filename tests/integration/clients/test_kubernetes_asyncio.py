"""kubernetes-asyncio (kproxy's own runtime dependency) through the real kproxy process.

The same common operations as the official client's test, the asyncio way: typed CRUD,
patches and server-side apply, dry-run, lists with selectors and paging, a watch from a
resource version and the 410 that sends it to re-list, logs with follow, exec over
``WsApiClient`` (stdin, stdout, stderr, the exit code from the error channel) and
port-forward over the same client (``v4.channel.k8s.io``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import cast

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.stream import WsApiClient

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess
from tests.integration.clients.conftest import NAMESPACE, POD, configmap, present

# kubernetes-asyncio's stubs (its generated .pyi files) are narrower than the client where
# these tests use it: a body may be any JSON (a dict as well as a model), a patch takes
# _content_type, exec's command is a list (one query parameter each), and an answer not
# preloaded is the raw one (aiohttp's response, or the WebSocket's context manager) rather
# than the model. Those calls are cast to what the client does.
WebSocket = AbstractAsyncContextManager[aiohttp.ClientWebSocketResponse]


@pytest.fixture
async def api_client(proxy: KproxyProcess) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=proxy.url)) as api_client:
        yield api_client
    await asyncio.sleep(0.1)  # let the closed connections' transports finish closing on this loop


async def test_crud_patches_apply_and_dry_run(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    created = await v1.create_namespaced_config_map(NAMESPACE, cast(client.V1ConfigMap, configmap("one")))
    assert created.data == {"k": "v"}
    current = await v1.read_namespaced_config_map("one", NAMESPACE)
    current.data = {"k": "2"}
    assert (await v1.replace_namespaced_config_map("one", NAMESPACE, current)).data == {"k": "2"}
    merged = await v1.patch_namespaced_config_map("one", NAMESPACE, {"data": {"m": "1"}})
    assert merged.data == {"k": "2", "m": "1"}
    patched = await v1.patch_namespaced_config_map("one", NAMESPACE, [{"op": "remove", "path": "/data/m"}])
    assert patched.data == {"k": "2"}
    apply_patch = cast(Callable[..., Awaitable[client.V1ConfigMap]], v1.patch_namespaced_config_map)
    applied = await apply_patch(
        "one",
        NAMESPACE,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one"}, "data": {"k": "2", "a": "x"}},
        field_manager="asyncio-client",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    assert applied.data == {"k": "2", "a": "x"}
    dry = await v1.delete_namespaced_config_map("one", NAMESPACE, dry_run="All")
    assert dry and api.store.get("configmaps", "one", NAMESPACE)
    await v1.delete_namespaced_config_map("one", NAMESPACE)
    with pytest.raises(ApiException) as info:
        await v1.read_namespaced_config_map("one", NAMESPACE)
    assert info.value.status == 404


async def test_lists_with_selectors_and_paging(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    for i in range(3):
        api.store.create("configmaps", configmap(f"p{i}", paged="yes"), NAMESPACE)
    page = await v1.list_namespaced_config_map(NAMESPACE, label_selector="paged=yes", limit=2)
    rest = await v1.list_namespaced_config_map(
        NAMESPACE, label_selector="paged=yes", limit=2, _continue=present(page.metadata)._continue
    )
    assert [present(c.metadata).name for c in page.items + rest.items] == ["p0", "p1", "p2"]
    assert present(present((await v1.list_node()).items[0].status).node_info).system_uuid
    apps = client.AppsV1Api(api_client)
    assert present((await apps.read_namespaced_deployment("nginx", NAMESPACE)).status).ready_replicas == 2


async def test_watch_and_410(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    rv = present((await v1.list_namespaced_config_map(NAMESPACE)).metadata).resource_version
    api.store.create("configmaps", configmap("w"), NAMESPACE)
    api.store.delete("configmaps", "w", NAMESPACE)
    seen = []
    async with watch.Watch() as w:
        async for event in w.stream(v1.list_namespaced_config_map, NAMESPACE, resource_version=rv, timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                break
    assert seen == [("ADDED", "w"), ("DELETED", "w")]
    api.store.compact()
    with pytest.raises(ApiException) as info:
        async with watch.Watch() as w:
            async for _ in w.stream(v1.list_namespaced_config_map, NAMESPACE, resource_version=rv, timeout_seconds=20):
                pass
    assert info.value.status == 410
    relisted = present((await v1.list_namespaced_config_map(NAMESPACE)).metadata).resource_version
    api.store.create("configmaps", configmap("after"), NAMESPACE)
    async with watch.Watch() as w:
        async for event in w.stream(
            v1.list_namespaced_config_map, NAMESPACE, resource_version=relisted, timeout_seconds=20
        ):
            assert (event["type"], event["object"].metadata.name) == ("ADDED", "after")
            break


async def test_logs_follow(api_client: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api_client)
    response = cast(
        aiohttp.ClientResponse,
        await v1.read_namespaced_pod_log(POD, NAMESPACE, follow=True, tail_lines=1, _preload_content=False),
    )
    lines = [(await response.content.readline()).decode() for _ in range(3)]
    response.release()
    assert [line.split()[-1] for line in lines] == ["9", "10", "11"]


async def test_exec_and_port_forward(proxy: KproxyProcess) -> None:
    async with WsApiClient(client.Configuration(host=proxy.url)) as ws_client:
        v1 = client.CoreV1Api(ws_client)
        exec_output = cast(Callable[..., Awaitable[str]], v1.connect_get_namespaced_pod_exec)
        output = await exec_output(
            POD, NAMESPACE, command=["sh", "-c", "echo out"], stderr=True, stdout=True, stdin=False, tty=False
        )
        assert output == "out\n"
        open_exec = cast(Callable[..., Awaitable[WebSocket]], v1.connect_get_namespaced_pod_exec)
        ws = await open_exec(
            POD,
            NAMESPACE,
            command=["ls", "/nope"],
            stderr=True,
            stdout=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        stderr, code = b"", None
        async with ws as socket:
            async for message in socket:
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
                channel, data = message.data[0], message.data[1:]
                if channel == 2:
                    stderr += data
                elif channel == 3 and data:
                    code = WsApiClient.parse_error_data(data)
        assert stderr == b"ls: cannot access '/nope': No such file or directory\n"
        assert code == 2
        open_forward = cast(Callable[..., Awaitable[WebSocket]], v1.connect_get_namespaced_pod_portforward)
        forward = await open_forward(POD, NAMESPACE, ports="80", _preload_content=False)
        async with forward as socket:
            first = [await socket.receive_bytes(), await socket.receive_bytes()]
            assert first == [b"\x00P\x00", b"\x01P\x00"]  # each channel's port, as kubelet sends it
            await socket.send_bytes(b"\x00GET / HTTP/1.0\r\nHost: nginx\r\n\r\n")
            body = b""
            async for message in socket:
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
                body += message.data[1:]
        assert body.startswith(b"HTTP/1.0 200 OK") and b"Welcome to nginx!" in body
