"""The fake's controllers (``kproxy.testing.controllers``): Deployments roll out into
ReplicaSets and pods, ReplicaSets keep their pod count, services get endpoints and
endpoint slices, owners take what they own with them, and events say so."""

from __future__ import annotations

import datetime

from kproxy.testing.controllers import Controllers
from kproxy.testing.seed import seed_cluster
from kproxy.testing.store import Store


def cluster() -> Store:
    store = Store()
    seed_cluster(store, datetime.datetime.now(datetime.UTC), None)
    Controllers(store).resync()
    return store


def names(store: Store, resource: str, ns: str = "default") -> list[str]:
    return [o["metadata"]["name"] for o in store.items(resource, ns)]


def test_the_seeded_deployment_is_rolled_out_with_its_own_replica_set() -> None:
    store = cluster()
    assert names(store, "replicasets") == ["nginx-7c5ddbdf54"]  # adopted: its template matches
    status = store.get("deployments", "nginx", "default")["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (2, 2, 2)
    assert status["observedGeneration"] == 1
    assert {c["type"] for c in status["conditions"]} == {"Available", "Progressing"}


def test_scaling_and_a_new_template() -> None:
    store = cluster()
    store.patch("deployments", "nginx", {"spec": {"replicas": 3}}, "default")
    assert len([n for n in names(store, "pods") if n.startswith("nginx-7c5ddbdf54-")]) == 3
    image = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.28"}]}}}}
    store.patch("deployments", "nginx", image, "default", patch_type="strategic")
    replica_sets = {rs["metadata"]["name"]: rs for rs in store.items("replicasets", "default")}
    assert len(replica_sets) == 2 and replica_sets["nginx-7c5ddbdf54"]["spec"]["replicas"] == 0
    [new] = [rs for name, rs in replica_sets.items() if name != "nginx-7c5ddbdf54"]
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    pods = store.items("pods", "default")
    assert len(pods) == 3 and all(p["spec"]["containers"][0]["image"] == "nginx:1.28" for p in pods)
    deployment = store.get("deployments", "nginx", "default")
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"] == 3
    reasons = [e["reason"] for e in store.items("events", "default")]
    assert "ScalingReplicaSet" in reasons and "SuccessfulCreate" in reasons and "SuccessfulDelete" in reasons


def test_a_deleted_pod_is_replaced_and_endpoints_follow() -> None:
    store = cluster()
    store.delete("pods", "nginx-7c5ddbdf54-2xkqw", "default")
    pods = names(store, "pods")
    assert len(pods) == 2 and "nginx-7c5ddbdf54-2xkqw" not in pods
    ips = {p["status"]["podIP"] for p in store.items("pods", "default")}
    [subset] = store.get("endpoints", "nginx", "default")["subsets"]
    assert {a["ip"] for a in subset["addresses"]} == ips
    assert subset["ports"] == [{"port": 80, "protocol": "TCP"}]  # unnamed, as kubectl expose makes it
    [slice_] = [s for s in store.items("endpointslices", "default") if s["metadata"]["name"].startswith("nginx-")]
    assert {a for e in slice_["endpoints"] for a in e["addresses"]} == ips
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "nginx"


def test_owners_take_what_they_own() -> None:
    store = cluster()
    store.delete("deployments", "nginx", "default")
    assert names(store, "replicasets") == []
    assert names(store, "pods") == []
    assert store.get("endpoints", "nginx", "default").get("subsets") is None
