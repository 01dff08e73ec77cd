"""Canned API responses nginx serves from disk: one pod (~2.7 KB), a pod list (~10 MB,
plus a pre-gzipped copy for ``gzip_static``) and ``/version``.

Objects look like a real cluster's (compact JSON as kube-apiserver writes it, varied
names, UIDs and IPs) so that gzip compresses them about as well as real lists. The list
is gzipped at level 1, kube-apiserver's level.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LIST_PATH", "POD_PATH", "VERSION_PATH", "Payloads", "write_payloads"]

POD_PATH = "/api/v1/namespaces/bench/pods/pod-0"
LIST_PATH = "/api/v1/pods"
VERSION_PATH = "/version"


@dataclass(frozen=True)
class Payloads:
    root: Path  # nginx's document root
    pod_bytes: int
    list_bytes: int
    list_gzip_bytes: int


def _pod(rng: random.Random, index: int) -> dict[str, Any]:
    name = f"web-{rng.getrandbits(32):08x}-{rng.getrandbits(20):05x}"
    ns = rng.choice(["default", "bench", "kube-system", "payments", "frontend"])
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    node = f"node-{rng.randrange(40):02d}.cluster.internal"
    started = (
        f"2025-0{rng.randrange(1, 9)}-{rng.randrange(10, 28)}"
        f"T{rng.randrange(10, 23)}:{rng.randrange(10, 59)}:{rng.randrange(10, 59)}Z"
    )
    image = f"registry.example.com/team/web:v1.{rng.randrange(40)}.{rng.randrange(9)}"
    return {
        "metadata": {
            "name": name,
            "generateName": name[:-5],
            "namespace": ns,
            "uid": uid,
            "resourceVersion": str(1_000_000 + index * 7 + rng.randrange(7)),
            "creationTimestamp": started,
            "labels": {"app": "web", "pod-template-hash": name[4:12], "tier": "frontend"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": name[:-6],
                    "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        ],
                        "defaultMode": 420,
                    },
                }
            ],
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    ],
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": node,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": started}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": started,
            "containerStatuses": [
                {
                    "name": "web",
                    "state": {"running": {"startedAt": started}},
                    "lastState": {},
                    "ready": True,
                    "restartCount": rng.randrange(3),
                    "image": image,
                    "imageID": f"{image}@sha256:{rng.getrandbits(256):064x}",
                    "containerID": f"containerd://{rng.getrandbits(256):064x}",
                    "started": True,
                }
            ],
            "qosClass": "Burstable",
        },
    }


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def write_payloads(root: Path, list_pods: int) -> Payloads:
    rng = random.Random(8)  # fixed: every run serves the same bytes
    pod = {"kind": "Pod", "apiVersion": "v1", **_pod(rng, 0)}
    items = [_pod(rng, i) for i in range(list_pods)]
    listing = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "2000000"}, "items": items}
    version = {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "bench",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T00:00:00Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    files = {POD_PATH: _compact(pod), LIST_PATH: _compact(listing), VERSION_PATH: _compact(version)}
    for url_path, body in files.items():
        path = root / url_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    gz = gzip.compress(files[LIST_PATH], compresslevel=1, mtime=0)
    (root / (LIST_PATH.lstrip("/") + ".gz")).write_bytes(gz)
    # nginx workers run as an unprivileged user: the tree must be world-readable.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return Payloads(root, len(files[POD_PATH]), len(files[LIST_PATH]), len(gz))
