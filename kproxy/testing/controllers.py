"""What kube-controller-manager would do in the fake cluster, at once and in-process.

In: every change the store commits (``Store.on_change``); out: the writes that follow,
made through the same store (so they reach watches like any other write):

* **Deployments**: each has one ReplicaSet per pod template, named
  ``NAME-HASH`` (``pod-template-hash`` label; an existing one whose template matches is
  adopted, as ``FindNewReplicaSet`` does); the current one gets ``spec.replicas``, the
  old ones 0 (a rollout completes at once); the status reports the rollout done
  (``observedGeneration``, ``updatedReplicas``, ``availableReplicas``, conditions
  ``Available`` and ``Progressing``), which is what ``kubectl rollout status`` waits for.
* **ReplicaSets**: as many pods as ``spec.replicas`` (``NAME-xxxxx``, owned by the
  ReplicaSet; a deleted one is replaced), and the status.
* **Endpoints and EndpointSlices** for every service with a selector: the ready pods it
  selects, its ports resolved against the pods' container ports (named target ports
  too); the ``kubernetes`` service points at the API server.

Garbage collection: deleting an owner deletes what it owns (background propagation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from kproxy.testing import event_recorder
from kproxy.testing.objects import NODE_IP, NODE_NAME
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store
from kproxy.testing.watches import Change

__all__ = ["Controllers"]

Obj = dict[str, Any]

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString
_API_SERVER_PORT = 6443


def _safe_encode(digest: bytes, length: int) -> str:
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:length])


def template_hash(template: Obj) -> str:
    """A stable 10-character hash of a pod template (kube's ``ComputeHash``, not its bytes)."""
    data = json.dumps(template, sort_keys=True).encode()
    return _safe_encode(hashlib.sha256(data).digest(), 10)


def _random_suffix() -> str:
    return "".join(secrets.choice(_HASH_ALPHABET) for _ in range(5))


def _owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _without_hash(template: Obj) -> Obj:
    out: Obj = json.loads(json.dumps(template))
    labels = (out.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    out.setdefault("metadata", {}).pop("creationTimestamp", None)
    return out


class Controllers:
    """The controllers, registered on a store; ``resync()`` reconciles everything once."""

    def __init__(self, store: Store, *, api_server_port: int = _API_SERVER_PORT) -> None:
        self.store = store
        self.api_server_port = api_server_port
        store.on_change(self._changed)

    def resync(self) -> None:
        for deployment in list(self.store.items("deployments")):
            self._deployment(deployment)
        for replica_set in list(self.store.items("replicasets")):
            self._replica_set(replica_set)
        for service in list(self.store.items("services")):
            self._endpoints(service)

    def _changed(self, change: Change) -> None:
        if change.type == "DELETED":
            self._collect_garbage(change.obj)
        if change.resource == "deployments" and change.type != "DELETED":
            self._current("deployments", change.obj, self._deployment)
        elif change.resource == "replicasets":
            if change.type != "DELETED":
                self._current("replicasets", change.obj, self._replica_set)
            self._owner_status(change.obj, "deployments", self._deployment)
        elif change.resource == "pods":
            self._owner_status(change.obj, "replicasets", self._replica_set)
            for service in list(self.store.items("services", change.namespace)):
                self._endpoints(service)
        elif change.resource == "services":
            if change.type == "DELETED":
                return
            self._current("services", change.obj, self._endpoints)

    def _current(self, resource: str, obj: Obj, act: Any) -> None:
        meta = obj["metadata"]
        current = self.store.find(resource, meta["name"], meta.get("namespace"))
        if current is not None:
            act(current)

    def _owner_status(self, obj: Obj, owner_resource: str, act: Any) -> None:
        ns = obj["metadata"].get("namespace")
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner = self.store.find(owner_resource, ref.get("name", ""), ns)
            if owner is not None and owner["metadata"]["uid"] == ref.get("uid"):
                act(owner)

    def _collect_garbage(self, gone: Obj) -> None:
        uid = gone["metadata"].get("uid")
        ns = gone["metadata"].get("namespace")
        for resource in ("replicasets", "pods", "endpointslices"):
            for obj in list(self.store.items(resource, ns)):
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    self._delete(resource, obj)

    def _set_status(self, resource: str, obj: Obj, status: Obj) -> None:
        """Replace the status (PUT .../status), so that fields gone from it go."""
        self.store.update(resource, {**obj, "status": status}, obj["metadata"].get("namespace"), subresource="status")

    def _delete(self, resource: str, obj: Obj) -> None:
        try:
            self.store.delete(resource, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        except ApiError:
            pass  # already gone

    # -- deployments ---------------------------------------------------------------

    def _deployment(self, deployment: Obj) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        template = spec.get("template") or {}
        owned = [rs for rs in self.store.items("replicasets", ns) if _owned_by(rs, deployment)]
        current = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == _without_hash(template)), None)
        replicas = int(spec.get("replicas", 1))
        if current is None:
            current = self._new_replica_set(deployment, owned)
            self._scaled(deployment, current, 0, replicas)
        elif current["spec"].get("replicas") != replicas:
            before = int(current["spec"].get("replicas", 0))
            current = self.store.patch("replicasets", current["metadata"]["name"], {"spec": {"replicas": replicas}}, ns)
            self._scaled(deployment, current, before, replicas)
        for old in owned:
            if old["metadata"]["uid"] != current["metadata"]["uid"] and old["spec"].get("replicas"):
                before = int(old["spec"]["replicas"])
                old = self.store.patch("replicasets", old["metadata"]["name"], {"spec": {"replicas": 0}}, ns)
                self._scaled(deployment, old, before, 0)
        latest = self.store.find("deployments", name, ns)
        if latest is None:
            return
        status = self._deployment_status(latest, current)
        if latest.get("status") != status:
            self._set_status("deployments", latest, status)

    def _scaled(self, deployment: Obj, replica_set: Obj, before: int, after: int) -> None:
        way = "up" if after > before else "down"
        rs_name = replica_set["metadata"]["name"]
        message = f"Scaled {way} replica set {rs_name} from {before} to {after}"
        event_recorder.record(self.store, deployment, "ScalingReplicaSet", message, "deployment-controller")

    def _new_replica_set(self, deployment: Obj, owned: list[Obj]) -> Obj:
        meta, spec = deployment["metadata"], deployment["spec"]
        hashed_template = json.loads(json.dumps(spec["template"]))
        pod_hash = template_hash(_without_hash(hashed_template))
        labels = {**(hashed_template.get("metadata", {}).get("labels") or {}), "pod-template-hash": pod_hash}
        hashed_template.setdefault("metadata", {})["labels"] = labels
        selector = json.loads(json.dumps(spec["selector"]))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        revisions = [
            int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0")) for rs in owned
        ]
        replica_set = {
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": {"deployment.kubernetes.io/revision": str(max(revisions, default=0) + 1)},
                "ownerReferences": [_owner_ref(deployment)],
            },
            "spec": {"replicas": int(spec.get("replicas", 1)), "selector": selector, "template": hashed_template},
        }
        return self.store.create("replicasets", replica_set, meta["namespace"])

    def _deployment_status(self, deployment: Obj, current: Obj) -> Obj:
        replicas = int(deployment["spec"].get("replicas", 1))
        ready = int((current.get("status") or {}).get("readyReplicas", 0))
        stamp = deployment["metadata"]["creationTimestamp"]
        rs_name = current["metadata"]["name"]
        conditions = [
            _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", stamp),
            _condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                stamp,
            ),
        ]
        status: Obj = {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": replicas}
        status.update({"updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready})
        if replicas == 0:
            status = {k: v for k, v in status.items() if k == "observedGeneration"}
        status["conditions"] = conditions
        return status

    # -- replica sets --------------------------------------------------------------

    def _replica_set(self, replica_set: Obj) -> None:
        meta, spec = replica_set["metadata"], replica_set.get("spec") or {}
        ns = meta["namespace"]
        pods = [p for p in self.store.items("pods", ns) if _owned_by(p, replica_set)]
        wanted = int(spec.get("replicas", 1))
        for _ in range(wanted - len(pods)):
            template = json.loads(json.dumps(spec.get("template") or {}))
            pod_meta = template.get("metadata") or {}
            pod_meta.pop("creationTimestamp", None)
            pod_meta.update(
                {
                    "name": f"{meta['name']}-{_random_suffix()}",
                    "namespace": ns,
                    "ownerReferences": [_owner_ref(replica_set)],
                }
            )
            pod = self.store.create("pods", {"metadata": pod_meta, "spec": template.get("spec") or {}}, ns)
            message = f"Created pod: {pod['metadata']['name']}"
            event_recorder.record(self.store, replica_set, "SuccessfulCreate", message, "replicaset-controller")
            event_recorder.record_pod_start(self.store, pod)
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[
            : max(0, len(pods) - wanted)
        ]:
            self._delete("pods", pod)
            message = f"Deleted pod: {pod['metadata']['name']}"
            event_recorder.record(self.store, replica_set, "SuccessfulDelete", message, "replicaset-controller")
        latest = self.store.find("replicasets", meta["name"], ns)
        if latest is None:
            return
        count = len([p for p in self.store.items("pods", ns) if _owned_by(p, latest)])
        status: Obj = {
            "replicas": count,
            "fullyLabeledReplicas": count,
            "readyReplicas": count,
            "availableReplicas": count,
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        status["observedGeneration"] = latest["metadata"].get("generation", 1)
        if latest.get("status") != status:
            self._set_status("replicasets", latest, status)

    # -- endpoints -----------------------------------------------------------------

    def _endpoints(self, service: Obj) -> None:
        meta, spec = service["metadata"], service.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        if name == "kubernetes" and ns == "default":
            addresses: list[Obj] = [{"ip": NODE_IP}]
            ports = [{"name": "https", "port": self.api_server_port, "protocol": "TCP"}]
            self._write_endpoints(service, [{"addresses": addresses, "ports": ports}], addresses, ports)
            return
        selector = spec.get("selector")
        if not selector:
            return
        pods = [
            p
            for p in self.store.items("pods", ns)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            and (p.get("status") or {}).get("podIP")
        ]
        ports = [_resolve_port(port, pods) for port in spec.get("ports") or []]
        addresses = [
            {
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName", NODE_NAME),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"]["uid"],
                },
            }
            for p in pods
        ]
        subsets = [{"addresses": addresses, "ports": ports}] if addresses and ports else []
        self._write_endpoints(service, subsets, addresses, ports)

    def _write_endpoints(self, service: Obj, subsets: list[Obj], addresses: list[Obj], ports: list[Obj]) -> None:
        meta = service["metadata"]
        ns, name = meta["namespace"], meta["name"]
        endpoints: Obj = {"metadata": {"name": name, "namespace": ns, "labels": dict(meta.get("labels") or {})}}
        if subsets:
            endpoints["subsets"] = subsets
        existing = self.store.find("endpoints", name, ns)
        if existing is None:
            self.store.create("endpoints", endpoints, ns)
        elif existing.get("subsets") != endpoints.get("subsets") or existing["metadata"].get("labels") != endpoints[
            "metadata"
        ].get("labels"):
            endpoints["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            self.store.update("endpoints", endpoints, ns)
        self._write_slice(service, addresses, ports)

    def _write_slice(self, service: Obj, addresses: list[Obj], ports: list[Obj]) -> None:
        meta = service["metadata"]
        ns, name = meta["namespace"], meta["name"]
        labels = {
            **(meta.get("labels") or {}),
            "kubernetes.io/service-name": name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        endpoints = [
            {
                "addresses": [a["ip"]],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                **({"nodeName": a["nodeName"]} if "nodeName" in a else {}),
                **({"targetRef": a["targetRef"]} if "targetRef" in a else {}),
            }
            for a in addresses
        ]
        body: Obj = {"addressType": "IPv4", "endpoints": endpoints, "ports": ports}
        existing = next(
            (
                s
                for s in self.store.items("endpointslices", ns)
                if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
            ),
            None,
        )
        if existing is None:
            obj = {
                "metadata": {
                    "name": f"{name}-{_random_suffix()}",
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [{**_owner_ref(service), "apiVersion": "v1"}],
                },
                **body,
            }
            self.store.create("endpointslices", obj, ns)
        elif any(existing.get(k) != v for k, v in body.items()):
            updated = {**existing, **body}
            self.store.update("endpointslices", updated, ns)


def _resolve_port(port: Obj, pods: list[Obj]) -> Obj:
    target: Any = port.get("targetPort", port.get("port"))
    if isinstance(target, str) and not target.isdigit():
        named = [
            p.get("containerPort")
            for pod in pods
            for c in pod["spec"].get("containers", [])
            for p in c.get("ports") or []
            if p.get("name") == target
        ]
        target = named[0] if named else port.get("port")
    resolved: Obj = {"port": int(target), "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        resolved = {"name": port["name"], **resolved}
    return resolved


def _condition(kind: str, status: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }
