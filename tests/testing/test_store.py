"""The fake's store (``kproxy.testing.store``): the history window and 410 Gone, dry runs,
generations, and the change listeners the controllers use."""

from __future__ import annotations

import pytest

from kproxy.testing.seed import seed_cluster
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store
from kproxy.testing.watches import Change


def store_with_namespace(history: int = 1000) -> Store:
    store = Store(history=history)
    store.create("namespaces", {"metadata": {"name": "default"}})
    return store


def cm(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": name}}


async def test_a_watch_resumes_inside_the_window_and_gets_410_outside() -> None:
    store = store_with_namespace(history=3)
    start = int(store.resource_version())
    for i in range(3):
        store.create("configmaps", cm(f"c{i}"), "default")
    watch = store.watch("configmaps", "default", resource_version=str(start))  # the 3 changes are kept
    assert [(await watch.next()).type for _ in range(3)] == ["ADDED", "ADDED", "ADDED"]  # type: ignore[union-attr]
    watch.close()
    store.create("configmaps", cm("c3"), "default")  # the oldest change falls out of the window
    expired = store.watch("configmaps", "default", resource_version=str(start))
    event = await expired.next()
    assert event is not None and event.type == "ERROR"
    assert event.object["code"] == 410 and event.object["reason"] == "Expired"
    assert event.object["message"] == f"too old resource version: {start} ({start + 1})"
    assert await expired.next() is None
    with pytest.raises(ApiError) as info:
        store.list("configmaps", "default", resource_version=str(start))
    assert info.value.code == 410


async def test_compact_forgets_the_history_and_expires_continue_tokens() -> None:
    store = store_with_namespace()
    for i in range(3):
        store.create("configmaps", cm(f"c{i}"), "default")
    page = store.list("configmaps", "default", limit=1)
    recent = store.resource_version()
    store.compact()
    with pytest.raises(ApiError) as info:
        store.list("configmaps", "default", limit=1, continue_token=page["metadata"]["continue"])
    assert (info.value.code, info.value.reason) == (410, "Expired")
    assert info.value.message.startswith("The provided continue parameter is too old")
    expired = store.watch("configmaps", "default", resource_version=recent)
    assert (await expired.next()).type == "ERROR"  # type: ignore[union-attr]
    relisted = store.list("configmaps", "default")["metadata"]["resourceVersion"]
    watch = store.watch("configmaps", "default", resource_version=relisted)  # a re-list's version works
    store.create("configmaps", cm("after"), "default")
    event = await watch.next()
    assert event is not None and (event.type, event.object["metadata"]["name"]) == ("ADDED", "after")
    watch.close()
    with pytest.raises(ValueError, match="history must be at least 1"):
        Store(history=0)


def test_dry_runs_store_nothing_and_announce_nothing() -> None:
    store = store_with_namespace()
    seen: list[Change] = []
    store.on_change(seen.append)
    version = store.resource_version()
    assert store.create("configmaps", cm("x"), "default", dry_run=True)["data"] == {"k": "x"}
    store.create("configmaps", cm("y"), "default")
    assert store.update("configmaps", {**cm("y"), "data": {"k": "2"}}, "default", dry_run=True)["data"] == {"k": "2"}
    assert store.patch("configmaps", "y", {"data": {"n": "1"}}, "default", dry_run=True)["data"]["n"] == "1"
    assert store.delete("configmaps", "y", "default", dry_run=True)["metadata"]["name"] == "y"
    assert store.get("configmaps", "y", "default")["data"] == {"k": "y"}
    assert int(store.resource_version()) == int(version) + 1
    assert [(c.type, c.obj["metadata"]["name"]) for c in seen] == [("ADDED", "y")]


def test_generation_counts_spec_changes() -> None:
    store = store_with_namespace()
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    assert store.create("deployments", deployment, "default")["metadata"]["generation"] == 1
    assert (
        store.patch("deployments", "d", {"metadata": {"labels": {"x": "y"}}}, "default")["metadata"]["generation"] == 1
    )
    assert store.patch("deployments", "d", {"spec": {"replicas": 3}}, "default")["metadata"]["generation"] == 2
    with pytest.raises(ApiError) as info:
        store.create("deployments", {**deployment, "metadata": {"name": "e"}, "spec": {"replicas": 1}}, "default")
    assert info.value.message == 'Deployment "e" is invalid: spec.selector: Required value'


def test_the_seed_cluster() -> None:
    import datetime

    store = Store()
    seed_cluster(store, datetime.datetime.now(datetime.UTC), None)
    pods = {p["metadata"]["name"]: p for p in store.items("pods", "default")}
    assert sorted(pods) == ["nginx-7c5ddbdf54-2xkqw", "nginx-7c5ddbdf54-8hvzn"]
    rs = store.get("replicasets", "nginx-7c5ddbdf54", "default")
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods.values())
    node = store.get("nodes", "demo-node")
    assert {"bootID", "machineID", "systemUUID"} <= set(node["status"]["nodeInfo"])
    assert {sa["metadata"]["namespace"] for sa in store.items("serviceaccounts")} == {
        "default",
        "kube-system",
        "kube-public",
    }
