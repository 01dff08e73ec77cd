"""The demo cluster the fake API server starts with (``FakeAPIServer(seed=True)``).

Three namespaces and their ``default`` service accounts, one node, ``kube-root-ca.crt``
in every namespace, the ``kubernetes``, ``kube-dns`` and ``nginx`` services, and two
Deployments with their ReplicaSets and pods: CoreDNS in ``kube-system`` and the demo's
``nginx`` (two replicas, label ``app=nginx``, containerPort 80) in ``default``. The
controllers (``controllers``) add what follows from them: endpoints, endpoint slices,
statuses.
"""

from __future__ import annotations

import datetime
from typing import Any

from kproxy.testing import event_recorder
from kproxy.testing.objects import NODE_NAME
from kproxy.testing.store import Store

__all__ = ["seed_cluster"]

Obj = dict[str, Any]

_SEED_NAMESPACES = ("default", "kube-system", "kube-public")


def seed_cluster(store: Store, now: datetime.datetime, ca_pem: bytes | None) -> None:
    """Create the demo cluster in ``store``, with ages that look lived-in."""

    def ago(days: float) -> str:
        return (now - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    boot = ago(12)
    for resource, obj in (
        *_seed_namespaces_and_node(boot),
        *_seed_configmaps(boot, ago(3), ca_pem),
        *_seed_services(boot, ago(2)),
    ):
        store.seed(resource, obj)
    for ns in _SEED_NAMESPACES:
        store.seed("serviceaccounts", {"metadata": {"name": "default", "namespace": ns, "creationTimestamp": boot}})
    coredns = {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3"}]}
    _workload(store, "kube-system", "coredns", "668d6bf9bc", {"k8s-app": "kube-dns"}, coredns, [("7xk2p", boot)])
    nginx = {
        "containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
    }
    nginx_pods = [("2xkqw", ago(2.0)), ("8hvzn", ago(1.5))]
    _workload(store, "default", "nginx", "7c5ddbdf54", {"app": "nginx"}, nginx, nginx_pods, created=ago(2.0))


def _owner(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _workload(
    store: Store,
    ns: str,
    name: str,
    template_hash: str,
    labels: dict[str, str],
    pod_spec: Obj,
    pods: list[tuple[str, str]],
    created: str = "",
) -> None:
    """A Deployment, its ReplicaSet and its running pods, owned one by the next."""
    created = created or pods[0][1]
    template = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
    deployment = store.seed(
        "deployments",
        {
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "labels": dict(labels)},
            "spec": {"replicas": len(pods), "selector": {"matchLabels": dict(labels)}, "template": template},
        },
    )
    hashed = {**labels, "pod-template-hash": template_hash}
    rs_meta = {
        "name": f"{name}-{template_hash}",
        "namespace": ns,
        "creationTimestamp": created,
        "labels": hashed,
        "annotations": {"deployment.kubernetes.io/revision": "1"},
        "ownerReferences": [_owner(deployment)],
    }
    rs_template = {"metadata": {"labels": hashed}, "spec": pod_spec}
    replica_set = store.seed(
        "replicasets",
        {
            "metadata": rs_meta,
            "spec": {"replicas": len(pods), "selector": {"matchLabels": hashed}, "template": rs_template},
        },
    )
    for suffix, pod_created in pods:
        pod_meta = {
            "name": f"{name}-{template_hash}-{suffix}",
            "namespace": ns,
            "creationTimestamp": pod_created,
            "labels": hashed,
            "ownerReferences": [_owner(replica_set)],
        }
        pod = store.seed("pods", {"metadata": pod_meta, "spec": pod_spec})
        event_recorder.record_pod_start(store, pod, when=pod_created)


def _seed_namespaces_and_node(boot: str) -> list[tuple[str, Obj]]:
    """The namespaces of a fresh cluster, and its one control-plane node."""
    out: list[tuple[str, Obj]] = [
        ("namespaces", {"metadata": {"name": ns, "creationTimestamp": boot}}) for ns in _SEED_NAMESPACES
    ]
    node_labels = {
        "kubernetes.io/hostname": NODE_NAME,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/control-plane": "",
    }
    out.append(("nodes", {"metadata": {"name": NODE_NAME, "creationTimestamp": boot, "labels": node_labels}}))
    return out


def _seed_configmaps(boot: str, created: str, ca_pem: bytes | None) -> list[tuple[str, Obj]]:
    """``kube-root-ca.crt`` in every namespace (kube-controller-manager publishes it), and
    the demo's own configmap."""
    root_ca = (ca_pem or b"").decode()
    out: list[tuple[str, Obj]] = [
        (
            "configmaps",
            {
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "creationTimestamp": boot},
                "data": {"ca.crt": root_ca},
            },
        )
        for ns in _SEED_NAMESPACES
    ]
    demo = {
        "metadata": {"name": "demo-config", "namespace": "default", "creationTimestamp": created},
        "data": {"greeting": "hello from kproxy's demo cluster", "replicas": "2"},
    }
    out.append(("configmaps", demo))
    return out


def _seed_services(boot: str, nginx_created: str) -> list[tuple[str, Obj]]:
    """``kubernetes`` and ``kube-dns`` as every cluster has them, and the demo's nginx."""
    kubernetes = {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "creationTimestamp": boot,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": "10.96.0.1",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    kube_dns = {
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "creationTimestamp": boot,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
        },
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    nginx = {
        "metadata": {
            "name": "nginx",
            "namespace": "default",
            "creationTimestamp": nginx_created,
            "labels": {"app": "nginx"},
        },
        "spec": {"selector": {"app": "nginx"}, "ports": [{"port": 80, "targetPort": 80}]},
    }
    return [("services", kubernetes), ("services", kube_dns), ("services", nginx)]
