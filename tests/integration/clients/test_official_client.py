"""The official ``kubernetes`` client (PyPI, synchronous) through the real kproxy process.

Its common operations, as its users write them: typed CRUD, the three patch types and
server-side apply, dry-run, lists with selectors and paging, watches from a resource
version (and the 410 that sends it to re-list), logs with follow, exec with stdin,
stdout, stderr and the exit code (``kubernetes.stream``), and port-forward. The client
blocks, so each call runs in a thread while the fake API server serves on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import pytest
import urllib3
from kubernetes import client, stream, watch
from kubernetes.client import ApiException

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess
from tests.integration.clients.conftest import NAMESPACE, POD, configmap, present

T = TypeVar("T")


@pytest.fixture
def api_client(proxy: KproxyProcess) -> Iterator[client.ApiClient]:
    api_client = client.ApiClient(client.Configuration(host=proxy.url))
    yield api_client
    api_client.close()  # its connection pool, with the kept-alive connections


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_crud_patches_apply_and_dry_run(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    created = await run(v1.create_namespaced_config_map, NAMESPACE, configmap("one", app="x"))
    assert present(created.metadata).name == "one" and created.data == {"k": "v"}
    read = await run(v1.read_namespaced_config_map, "one", NAMESPACE)
    assert read.data is not None
    read.data["k"] = "replaced"
    assert (await run(v1.replace_namespaced_config_map, "one", NAMESPACE, read)).data == {"k": "replaced"}
    merged = await run(v1.patch_namespaced_config_map, "one", NAMESPACE, {"data": {"m": "1"}})
    assert merged.data == {"k": "replaced", "m": "1"}
    patched = await run(v1.patch_namespaced_config_map, "one", NAMESPACE, [{"op": "remove", "path": "/data/m"}])
    assert patched.data == {"k": "replaced"}
    strategic = await run(
        v1.patch_namespaced_config_map,
        "one",
        NAMESPACE,
        {"metadata": {"labels": {"s": "1"}}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert present(strategic.metadata).labels == {"app": "x", "s": "1"}
    applied = await run(
        v1.patch_namespaced_config_map,
        "applied",
        NAMESPACE,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}},
        field_manager="official-client",
        _content_type="application/apply-patch+yaml",
    )
    assert applied.data == {"a": "1"}
    assert [m.manager for m in present(present(applied.metadata).managed_fields)] == ["official-client"]
    dry = await run(v1.create_namespaced_config_map, NAMESPACE, configmap("dry"), dry_run="All")
    assert present(dry.metadata).name == "dry"
    with pytest.raises(ApiException) as info:
        await run(v1.read_namespaced_config_map, "dry", NAMESPACE)
    assert info.value.status == 404
    await run(v1.delete_namespaced_config_map, "one", NAMESPACE, dry_run="All")
    assert api.store.get("configmaps", "one", NAMESPACE)
    await run(v1.delete_namespaced_config_map, "one", NAMESPACE)
    with pytest.raises(ApiException) as info:
        await run(v1.delete_namespaced_config_map, "one", NAMESPACE)
    assert info.value.status == 404


async def test_typed_lists_with_selectors_and_paging(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    nodes = await run(v1.list_node)
    assert present(present(nodes.items[0].status).node_info).boot_id  # every required field is there
    for i in range(5):
        api.store.create("configmaps", configmap(f"page-{i}", paged="yes"), NAMESPACE)
    first = await run(v1.list_namespaced_config_map, NAMESPACE, label_selector="paged=yes", limit=2)
    names = [present(c.metadata).name for c in first.items]
    token = present(first.metadata)._continue
    while token:
        page = await run(v1.list_namespaced_config_map, NAMESPACE, label_selector="paged=yes", limit=2, _continue=token)
        names += [present(c.metadata).name for c in page.items]
        token = present(page.metadata)._continue
    assert names == [f"page-{i}" for i in range(5)]
    pods = await run(v1.list_pod_for_all_namespaces, field_selector="status.phase=Running")
    assert {present(p.metadata).name for p in pods.items} >= {POD}
    for kind in ("list_namespaced_event", "list_namespaced_endpoints", "list_namespaced_service_account"):
        assert (await run(getattr(v1, kind), NAMESPACE)).items
    apps = client.AppsV1Api(api_client)
    [deployment] = (await run(apps.list_namespaced_deployment, NAMESPACE)).items
    assert present(deployment.status).available_replicas == 2


def _watch(v1: client.CoreV1Api, resource_version: str, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        v1.list_namespaced_config_map, NAMESPACE, resource_version=resource_version, timeout_seconds=20
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            w.stop()
    return seen


async def test_watch_from_a_resource_version_and_410(api_client: client.ApiClient, api: FakeAPIServer) -> None:
    v1 = client.CoreV1Api(api_client)
    rv = present((await run(v1.list_namespaced_config_map, NAMESPACE)).metadata).resource_version
    api.store.create("configmaps", configmap("w1"), NAMESPACE)
    api.store.patch("configmaps", "w1", {"data": {"k": "2"}}, NAMESPACE)
    api.store.delete("configmaps", "w1", NAMESPACE)
    assert await run(_watch, v1, rv, 3) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    api.store.compact()
    with pytest.raises(ApiException) as info:
        await run(_watch, v1, rv, 1)
    assert info.value.status == 410  # the client's signal to re-list
    relisted = present((await run(v1.list_namespaced_config_map, NAMESPACE)).metadata).resource_version
    api.store.create("configmaps", configmap("w2"), NAMESPACE)
    assert await run(_watch, v1, relisted, 1) == [("ADDED", "w2")]


def _follow(v1: client.CoreV1Api, lines: int) -> list[str]:
    # Not preloaded, the answer is urllib3's response (as the method's docstring says), not
    # the str its annotation gives.
    response = cast(
        urllib3.HTTPResponse,
        v1.read_namespaced_pod_log(POD, NAMESPACE, follow=True, tail_lines=1, _preload_content=False),
    )
    out: list[str] = []
    try:
        for line in response.stream(amt=1):
            out.append(line.decode())
            if "".join(out).count("\n") >= lines:
                break
    finally:
        response.release_conn()
    return "".join(out).splitlines()[:lines]


async def test_logs_follow(api_client: client.ApiClient) -> None:
    lines = await run(_follow, client.CoreV1Api(api_client), 3)
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["9", "10", "11"]


def _exec(v1: client.CoreV1Api) -> tuple[str, str, int | None]:
    command = ["sh", "-c", "cat"]
    ws = stream.stream(
        v1.connect_get_namespaced_pod_exec,
        POD,
        NAMESPACE,
        command=command,
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    ws.write_stdin("hello from stdin\n")  # a text frame: the client's documented str form
    out = ""
    while "hello" not in out and ws.is_open():
        ws.update(timeout=5)
        out += ws.read_stdout()
    _close(ws)
    failing = stream.stream(
        v1.connect_get_namespaced_pod_exec,
        POD,
        NAMESPACE,
        command=["sh", "-c", "ls /nope"],
        stdout=True,
        stderr=True,
        _preload_content=False,
    )
    failing.run_forever(timeout=10)
    result = out, failing.read_stderr(), failing.returncode
    _close(failing)
    return result


def _close(ws: Any) -> None:
    """Close a WSClient, its socket too: websocket-client's close() returns early, leaving the
    socket open, when the server closed first (as it does at the end of a session)."""
    ws.close()
    ws.sock.shutdown()


async def test_exec_with_stdin_stderr_and_exit_code(api_client: client.ApiClient) -> None:
    out, err, code = await run(_exec, client.CoreV1Api(api_client))
    assert out == "hello from stdin\n"
    assert err == "ls: cannot access '/nope': No such file or directory\n"
    assert code == 2


def _port_forward(v1: client.CoreV1Api) -> bytes:
    forward = stream.portforward(v1.connect_get_namespaced_pod_portforward, POD, NAMESPACE, ports="80")
    sock = forward.socket(80)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: nginx\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    forward.websocket.close()
    forward.websocket.shutdown()  # see _close
    return data


async def test_port_forward(api_client: client.ApiClient) -> None:
    data = await run(_port_forward, client.CoreV1Api(api_client))
    assert data.startswith(b"HTTP/1.0 200 OK\r\n") and b"Welcome to nginx!" in data
