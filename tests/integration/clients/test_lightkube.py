"""lightkube (asyncio, typed models) through the real kproxy process.

Its common operations: create, get, replace, the three patch types, server-side
``apply`` (create-on-apply, a conflict, ``force``), dry-run, lists with labels, fields
and chunks (paging), a watch from a resource version and the 410 it raises when that
version is gone, then its re-list, and logs with follow. lightkube has no exec or
port-forward.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Node, Pod
from lightkube.types import PatchType

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess
from tests.integration.clients.conftest import NAMESPACE, POD, configmap, present


@pytest.fixture
async def lk(proxy: KproxyProcess) -> AsyncIterator[AsyncClient]:
    # kproxy adds the credential: an empty user, as `kubectl --server` would send.
    config = KubeConfig.from_dict(
        {
            "clusters": [{"name": "kproxy", "cluster": {"server": proxy.url}}],
            "users": [{"name": "nobody", "user": {}}],
            "contexts": [
                {"name": "kproxy", "context": {"cluster": "kproxy", "user": "nobody", "namespace": NAMESPACE}}
            ],
            "current-context": "kproxy",
        }
    )
    client = AsyncClient(config=config, field_manager="lightkube")
    yield client
    await client.close()
    await asyncio.sleep(0.1)  # let the closed connections' transports finish closing on this loop


async def test_crud_patches_apply_and_dry_run(lk: AsyncClient, api: FakeAPIServer) -> None:
    created = await lk.create(ConfigMap(metadata=ObjectMeta(name="one", labels={"app": "x"}), data={"k": "v"}))
    assert present(created.metadata).uid
    current = await lk.get(ConfigMap, "one")
    current.data = {"k": "2"}
    assert (await lk.replace(current)).data == {"k": "2"}
    merged = await lk.patch(ConfigMap, "one", {"data": {"m": "1"}}, patch_type=PatchType.MERGE)
    assert merged.data == {"k": "2", "m": "1"}
    strategic = await lk.patch(ConfigMap, "one", {"metadata": {"labels": {"s": "1"}}})
    assert present(strategic.metadata).labels == {"app": "x", "s": "1"}
    removed = await lk.patch(ConfigMap, "one", [{"op": "remove", "path": "/data/m"}], patch_type=PatchType.JSON)
    assert removed.data == {"k": "2"}
    applied = await lk.apply(ConfigMap(metadata=ObjectMeta(name="applied"), data={"a": "1"}))
    assert applied.data == {"a": "1"}
    other = {"data": {"a": "changed"}}
    await lk.patch(ConfigMap, "applied", other, patch_type=PatchType.MERGE, field_manager="someone-else")
    with pytest.raises(ApiError) as info:
        await lk.apply(ConfigMap(metadata=ObjectMeta(name="applied"), data={"a": "2"}))
    assert info.value.status.code == 409 and "Apply failed with 1 conflict" in present(info.value.status.message)
    forced = await lk.apply(ConfigMap(metadata=ObjectMeta(name="applied"), data={"a": "2"}), force=True)
    assert forced.data == {"a": "2"}
    await lk.create(ConfigMap(metadata=ObjectMeta(name="dry")), dry_run=True)
    await lk.delete(ConfigMap, "one", dry_run=True)
    assert api.store.find("configmaps", "dry", NAMESPACE) is None
    assert api.store.find("configmaps", "one", NAMESPACE) is not None
    await lk.delete(ConfigMap, "one")
    with pytest.raises(ApiError) as info:
        await lk.get(ConfigMap, "one")
    assert info.value.status.code == 404


async def test_typed_lists_with_selectors_and_chunks(lk: AsyncClient, api: FakeAPIServer) -> None:
    for i in range(5):
        api.store.create("configmaps", configmap(f"c{i}", chunked="yes"), NAMESPACE)
    names = [present(c.metadata).name async for c in lk.list(ConfigMap, labels={"chunked": "yes"}, chunk_size=2)]
    assert names == [f"c{i}" for i in range(5)]
    pods = [present(p.metadata).name async for p in lk.list(Pod, fields={"status.phase": "Running"})]
    assert POD in pods
    [node] = [n async for n in lk.list(Node)]
    node_info = present(present(node.status).nodeInfo)
    assert node_info.bootID and node_info.machineID
    deployment = await lk.get(Deployment, "nginx")
    assert present(deployment.status).availableReplicas == 2


async def test_watch_410_and_relist(lk: AsyncClient, api: FakeAPIServer) -> None:
    rv = api.store.resource_version()
    api.store.create("configmaps", configmap("w"), NAMESPACE)
    api.store.delete("configmaps", "w", NAMESPACE)
    seen = []
    async for op, obj in lk.watch(ConfigMap, resource_version=rv, server_timeout=20):
        seen.append((op, present(obj.metadata).name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "w"), ("DELETED", "w")]
    api.store.compact()
    with pytest.raises(ApiError) as info:
        async for _ in lk.watch(ConfigMap, resource_version=rv, server_timeout=20):
            pass
    assert info.value.status.code == 410
    # The re-list lightkube users do: list again, then watch from the current version.
    assert [present(c.metadata).name async for c in lk.list(ConfigMap, labels={"app": "nope"})] == []
    current = api.store.resource_version()
    api.store.create("configmaps", configmap("after"), NAMESPACE)
    async for op, obj in lk.watch(ConfigMap, resource_version=current, server_timeout=20):
        assert (op, present(obj.metadata).name) == ("ADDED", "after")
        break


async def test_logs_follow(lk: AsyncClient) -> None:
    lines = []
    async for line in lk.log(POD, follow=True, tail_lines=1):
        lines.append(line)
        if len(lines) == 3:
            break
    assert [line.split()[-1] for line in lines] == ["9", "10", "11"]
