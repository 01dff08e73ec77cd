"""The resource endpoints of the fake API server: ``/api/v1/...`` and ``/apis/GROUP/VERSION/...``.

URL shapes, as kube-apiserver routes them (``PREFIX`` is ``/api/v1`` or ``/apis/G/V``)::

    PREFIX/RESOURCE                         list|watch (all namespaces), create (cluster-scoped)
    PREFIX/namespaces/NS/RESOURCE           list|watch, create, deletecollection
    PREFIX/namespaces/NS/RESOURCE/NAME      get, update (PUT), patch, delete
    PREFIX/namespaces/NS/RESOURCE/NAME/SUB  status, scale, log, exec|attach|portforward, proxy[/...]
    PREFIX/RESOURCE/NAME[/SUB]              the same for cluster-scoped resources
    PREFIX/watch/...                        the deprecated spelling of ?watch=true

Reads answer JSON, YAML, ``Table`` or ``PartialObjectMetadata`` as ``Accept`` asks
(``wire``, ``tables``); watches stream (``watch_stream``); writes are ``writes``; the
pod streams are ``pod_io``; the ``proxy`` subresources forward to the local HTTP
servers registered as backends (``proxying``). ``events.k8s.io`` events are the core
ones converted on the way (``event_views``); ``scale`` is the ``autoscaling/v1 Scale``
of a Deployment or ReplicaSet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from kproxy.testing import event_views, resources, tables, wire, writes
from kproxy.testing.pod_io import serve_log, serve_pod_upgrade
from kproxy.testing.proxying import Backends, handle_proxy
from kproxy.testing.runtime import PodRuntime
from kproxy.testing.status import ApiError, not_allowed, unknown_resource
from kproxy.testing.store import Store
from kproxy.testing.watch_stream import serve_watch

__all__ = ["CoreV1API", "not_allowed", "unknown_resource"]

Obj = dict[str, Any]
View = Callable[[Obj], Obj]


def _same(obj: Obj) -> Obj:
    return obj


def _views(rtype: resources.ResourceType) -> tuple[View, View]:
    """(inbound, outbound): how the served version's objects map to the stored ones."""
    if rtype.group == "events.k8s.io":
        return event_views.to_core, event_views.from_core
    return _same, _same


class CoreV1API:
    """Every stored resource of every served group version (the name is historical)."""

    def __init__(self, store: Store, stopping: asyncio.Event) -> None:
        self.store = store
        self.stopping = stopping  # set when the server stops: ends log streams and upgrades
        self.runtime = PodRuntime()  # what runs in the pods: exec, attach, cp, port-forward
        self.backends = Backends()  # the local HTTP servers behind proxy subresources

    async def handle(
        self, request: web.BaseRequest, parts: list[str], query: dict[str, str], *, group: str = "", version: str = "v1"
    ) -> web.StreamResponse:
        if parts[0] == "watch" and len(parts) > 1:
            # The deprecated PREFIX/watch/... form of ?watch=true.
            parts = parts[1:]
            query = {**query, "watch": "true"}
        namespace: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] not in ("status", "finalize"):
            namespace, parts = parts[1], parts[2:]
        rtype = resources.resource_in(group, version, parts[0])
        if rtype is None or not rtype.stored or (namespace is not None and not rtype.namespaced):
            raise unknown_resource()
        if len(parts) == 1:
            return await self._collection(request, rtype, namespace, query)
        name = parts[1]
        if rtype.namespaced and namespace is None:
            raise unknown_resource()  # PREFIX/pods/NAME does not exist
        if "watch" in query and wire.flag(query, "watch") and len(parts) == 2:
            query = {**query, "fieldSelector": f"metadata.name={name}"}
            return await self._collection(request, rtype, namespace, query)
        if len(parts) == 2:
            return await self._item(request, rtype, namespace, name, query, "")
        sub = parts[2]
        if sub not in {s.name for s in rtype.subresources}:
            raise unknown_resource()
        if sub == "proxy":
            network = self.runtime.network
            return await handle_proxy(request, self.store, self.backends, rtype.name, namespace, name, network)
        if len(parts) > 3:
            raise unknown_resource()
        if sub == "log":
            return await serve_log(request, self.store, self.stopping, namespace or "default", name, query)
        if sub in ("exec", "attach", "portforward"):
            ns = namespace or "default"
            return await serve_pod_upgrade(request, self.store, self.runtime, self.stopping, sub, ns, name)
        if sub == "scale":
            return await self._scale(request, rtype, namespace, name)
        if sub == "token":
            raise ApiError(405, "MethodNotAllowed", "the fake API server issues no service account tokens")
        return await self._item(request, rtype, namespace, name, query, sub)

    async def _collection(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        namespace: str | None,
        query: dict[str, str],
    ) -> web.StreamResponse:
        method = request.method
        inbound, outbound = _views(rtype)
        if method in ("GET", "HEAD"):
            if wire.flag(query, "watch"):
                return await serve_watch(request, self.store, rtype.name, namespace, query, outbound)
            try:
                limit = int(query.get("limit", "0") or 0)
            except ValueError:
                raise ApiError.bad_request(f"invalid limit {query['limit']!r}") from None
            result = self.store.list(
                rtype.name,
                namespace,
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
                limit=limit,
                continue_token=query.get("continue", ""),
                resource_version=query.get("resourceVersion", "") if query.get("resourceVersionMatch") else "",
                copy=False,
            )
            if outbound is not _same:
                result = {**result, "items": [outbound(i) for i in result["items"]]}
                result["apiVersion"] = rtype.api_version
            return self._render_list(request, rtype, result, query)
        fmt = wire.negotiate(request, allow_shapes=False).fmt
        if method == "POST":
            if namespace is None and rtype.namespaced:
                raise not_allowed()
            created = await writes.create(request, self.store, rtype, namespace, inbound)
            return wire.respond(request, outbound(created), status=201, fmt=fmt)
        if method == "DELETE":
            result = await writes.delete_collection(request, self.store, rtype, namespace, query)
            return wire.respond(request, result, fmt=fmt)
        raise not_allowed()

    def _render_list(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        result: dict[str, Any],
        query: Mapping[str, str],
    ) -> web.Response:
        negotiated = wire.negotiate(request, allow_shapes=True)
        if negotiated.shape == "Table":
            items = [{"kind": rtype.kind, "apiVersion": rtype.api_version, **item} for item in result["items"]]
            obj = tables.to_table(
                rtype.name,
                items,
                result["metadata"],
                include_object=query.get("includeObject", "Metadata"),
                api_version=negotiated.api_version,
            )
        elif negotiated.shape.startswith("PartialObjectMetadata"):
            obj = tables.partial_metadata_list(result["items"], result["metadata"], negotiated.api_version)
        else:
            obj = result
        return wire.respond(request, obj, fmt=negotiated.fmt)

    async def _item(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        namespace: str | None,
        name: str,
        query: dict[str, str],
        sub: str,
    ) -> web.StreamResponse:
        method = request.method
        ns = namespace
        views = _views(rtype)
        outbound = views[1]
        if method in ("GET", "HEAD"):
            obj = outbound(self.store.get(rtype.name, name, ns, copy=False))
            negotiated = wire.negotiate(request, allow_shapes=True)
            if negotiated.shape == "Table":
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                include = query.get("includeObject", "Metadata")
                table = tables.to_table(
                    rtype.name, [obj], meta, include_object=include, api_version=negotiated.api_version
                )
                return wire.respond(request, table, fmt=negotiated.fmt)
            if negotiated.shape == "PartialObjectMetadata":
                return wire.respond(request, tables.partial_metadata(obj, negotiated.api_version), fmt=negotiated.fmt)
            return wire.respond(request, obj, fmt=negotiated.fmt)
        fmt = wire.negotiate(request, allow_shapes=False).fmt
        if method == "PUT":
            updated = await writes.update(request, self.store, rtype, ns, name, sub, views[0])
            return wire.respond(request, outbound(updated), fmt=fmt)
        if method == "PATCH":
            patched, status = await writes.patch(request, self.store, rtype, ns, name, sub, views)
            return wire.respond(request, outbound(patched), status=status, fmt=fmt)
        if method == "DELETE" and not sub:
            return wire.respond(request, outbound(await writes.delete(request, self.store, rtype, ns, name)), fmt=fmt)
        raise not_allowed()

    async def _scale(
        self, request: web.BaseRequest, rtype: resources.ResourceType, namespace: str | None, name: str
    ) -> web.Response:
        """``autoscaling/v1 Scale`` of a Deployment or ReplicaSet: get, update and patch its replicas."""
        fmt = wire.negotiate(request, allow_shapes=False).fmt
        if request.method in ("PUT", "PATCH"):
            body = wire.decode_body(request, await request.read())
            if request.method == "PATCH":
                if not isinstance(body, dict):
                    raise ApiError.bad_request("a merge patch must be a JSON object")
                replicas = (body.get("spec") or {}).get("replicas")
            else:
                replicas = (body.get("spec") or {}).get("replicas") if isinstance(body, dict) else None
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value')
            self.store.patch(rtype.name, name, {"spec": {"replicas": replicas}}, namespace)
        elif request.method not in ("GET", "HEAD"):
            raise not_allowed()
        obj = self.store.get(rtype.name, name, namespace)
        return wire.respond(request, _scale_of(obj), fmt=fmt)


def _scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }
