"""The ``/api/v1/...`` resource endpoints of the fake API server.

URL shapes, as kube-apiserver routes them::

    /api/v1/RESOURCE                         list|watch (all namespaces), create (cluster-scoped)
    /api/v1/namespaces/NS/RESOURCE           list|watch, create, deletecollection
    /api/v1/namespaces/NS/RESOURCE/NAME      get, update (PUT), patch, delete
    /api/v1/namespaces/NS/RESOURCE/NAME/SUB  status, log, exec|attach|portforward, proxy[/...]
    /api/v1/RESOURCE/NAME[/SUB]              the same for cluster-scoped resources
    /api/v1/watch/...                        the deprecated spelling of ?watch=true

Watches stream ``{"type": ..., "object": ...}\\n`` lines with chunked encoding, one
write (so one chunk) per event, sent the moment the store reports the change; as
``Table`` the column definitions come with the first event only. Log streams
(``follow=true``) add a line every 0.2 s until the client leaves. ``exec``, ``attach`` and
``portforward`` need an upgrade request (``upgrade``); the ``proxy`` subresources forward
to the local HTTP servers a test registers (``proxying``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from kproxy.testing import resources, tables, wire
from kproxy.testing.proxying import Backends, handle_proxy
from kproxy.testing.runtime import PodRuntime
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store, Watch, WatchEvent
from kproxy.testing.upgrade import serve_upgrade

__all__ = ["CoreV1API", "not_allowed", "unknown_resource"]

_LOG_INTERVAL = 0.2
_LOG_BACKLOG = 10  # lines a pod has logged before anyone asks
_DEFAULT_WATCH_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout


def unknown_resource() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


class _EventShape:
    """Turns watch events into what ``Accept`` asked for; a Table's columns come with the first."""

    def __init__(self, resource: str, negotiated: wire.Negotiated, include_object: str) -> None:
        self.resource = resource
        self.negotiated = negotiated
        self.include_object = include_object
        self.first = True

    def __call__(self, event: WatchEvent) -> dict[str, Any]:
        obj = event.object
        if event.type not in ("ADDED", "MODIFIED", "DELETED"):
            return obj  # BOOKMARK and ERROR objects go out as they are
        if self.negotiated.shape == "Table":
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            table = tables.to_table(
                self.resource,
                [obj],
                meta,
                include_object=self.include_object,
                api_version=self.negotiated.api_version,
                headers=self.first,
            )
            self.first = False
            return table
        if self.negotiated.shape.startswith("PartialObjectMetadata"):
            return tables.partial_metadata(obj, self.negotiated.api_version)
        return obj


class CoreV1API:
    def __init__(self, store: Store, stopping: asyncio.Event) -> None:
        self.store = store
        self.stopping = stopping  # set when the server stops: ends log streams and upgrades
        self.runtime = PodRuntime()  # what runs in the pods: exec, attach, cp, port-forward
        self.backends = Backends()  # the local HTTP servers behind proxy subresources

    async def handle(self, request: web.BaseRequest, parts: list[str], query: dict[str, str]) -> web.StreamResponse:
        if parts[0] == "watch" and len(parts) > 1:
            # The deprecated /api/v1/watch/... form of ?watch=true.
            parts = parts[1:]
            query = {**query, "watch": "true"}
        namespace: str | None = None
        if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] not in ("status", "finalize"):
            namespace, parts = parts[1], parts[2:]
        rtype = resources.resource_by_name(parts[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise unknown_resource()
        if len(parts) == 1:
            return await self._collection(request, rtype, namespace, query)
        name = parts[1]
        if rtype.namespaced and namespace is None:
            raise unknown_resource()  # /api/v1/pods/NAME does not exist
        if "watch" in query and wire.flag(query, "watch") and len(parts) == 2:
            query = {**query, "fieldSelector": f"metadata.name={name}"}
            return await self._collection(request, rtype, namespace, query)
        if len(parts) == 2:
            return await self._item(request, rtype, namespace, name, query, "")
        sub = parts[2]
        if sub not in {s.name for s in rtype.subresources}:
            raise unknown_resource()
        if sub == "proxy":
            return await handle_proxy(request, self.store, self.backends, rtype.name, namespace, name)
        if len(parts) > 3:
            raise unknown_resource()
        if sub == "log":
            return await self._log(request, namespace or "default", name, query)
        if sub in ("exec", "attach", "portforward"):
            return await self._upgrade(request, sub, namespace or "default", name)
        return await self._item(request, rtype, namespace, name, query, sub)

    def _check_kind(self, rtype: resources.ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError.bad_request("the object provided is unrecognized (must be of type map)")
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise ApiError.bad_request(
                f'{kind} in version "{body.get("apiVersion", "v1")}" cannot be handled as a {rtype.kind}: '
                f'no kind "{kind}" is registered for version "v1"'
            )
        return body

    async def _collection(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        namespace: str | None,
        query: dict[str, str],
    ) -> web.StreamResponse:
        method = request.method
        if method in ("GET", "HEAD"):
            if wire.flag(query, "watch"):
                return await self._watch(request, rtype, namespace, query)
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
                copy=False,
            )
            return self._render_list(request, rtype, result, query)
        if method == "POST":
            if namespace is None and rtype.namespaced:
                raise not_allowed()
            body = self._check_kind(rtype, wire.decode_body(request, await request.read()))
            created = self.store.create(rtype.name, body, namespace)
            negotiated = wire.negotiate(request, allow_shapes=False)
            return wire.respond(request, created, status=201, fmt=negotiated.fmt)
        if method == "DELETE" and "deletecollection" in rtype.verbs:
            items = self.store.list(
                rtype.name,
                namespace,
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
            )
            deleted = []
            for item in items["items"]:
                meta = item["metadata"]
                deleted.append(self.store.delete(rtype.name, meta["name"], meta.get("namespace")))
            result = {
                **items,
                "items": [{k: v for k, v in d.items() if k not in ("kind", "apiVersion")} for d in deleted],
            }
            return wire.respond(request, result)
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
            items = [{"kind": rtype.kind, "apiVersion": "v1", **item} for item in result["items"]]
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
        if method in ("GET", "HEAD"):
            obj = self.store.get(rtype.name, name, ns, copy=False)
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
            body = self._check_kind(rtype, wire.decode_body(request, await request.read()))
            meta = body.setdefault("metadata", {})
            if meta.get("name") != name:
                raise ApiError.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            return wire.respond(request, self.store.update(rtype.name, body, ns, subresource=sub), fmt=fmt)
        if method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype not in wire.PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    + ", ".join(sorted(wire.PATCH_TYPES)),
                )
            patch = wire.decode_body(request, await request.read())
            patch_type = wire.PATCH_TYPES[ctype]
            patched = self.store.patch(rtype.name, name, patch, ns, patch_type=patch_type, subresource=sub)
            return wire.respond(request, patched, fmt=fmt)
        if method == "DELETE" and not sub:
            await request.read()  # DeleteOptions: accepted, not honoured (deletion is immediate)
            return wire.respond(request, self.store.delete(rtype.name, name, ns), fmt=fmt)
        raise not_allowed()

    async def _watch(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        namespace: str | None,
        query: dict[str, str],
    ) -> web.StreamResponse:
        negotiated = wire.negotiate(request, allow_shapes=True)
        try:
            timeout = float(query.get("timeoutSeconds") or _DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise ApiError.bad_request(f"invalid timeoutSeconds {query['timeoutSeconds']!r}") from None
        watch = self.store.watch(
            rtype.name,
            namespace,
            resource_version=query.get("resourceVersion", ""),
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            send_initial_events=wire.flag(query, "sendInitialEvents"),
        )
        try:
            return await self._stream_watch(request, rtype, watch, negotiated, query, timeout)
        finally:
            watch.close()

    async def _stream_watch(
        self,
        request: web.BaseRequest,
        rtype: resources.ResourceType,
        watch: Watch,
        negotiated: wire.Negotiated,
        query: Mapping[str, str],
        timeout: float,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=wire.api_headers(negotiated.fmt))
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        shape = _EventShape(rtype.name, negotiated, query.get("includeObject", "Metadata"))
        # The client may leave at any time; aiohttp then ends the chunked body quietly.
        with contextlib.suppress(ConnectionError):
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(watch.next(), remaining)
                except TimeoutError:
                    break  # timeoutSeconds: the stream ends normally
                if event is None:
                    break  # closed: the server is stopping
                # One event per write: aiohttp sends each as its own chunk, immediately.
                await response.write(wire.dump({"type": event.type, "object": shape(event)}))
        return response

    async def _log(
        self, request: web.BaseRequest, namespace: str, name: str, query: dict[str, str]
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise not_allowed()
        pod = self.store.get("pods", name, namespace, copy=False)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container", "")
        if not container:
            if len(containers) != 1:
                raise ApiError.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        if wire.flag(query, "previous"):
            raise ApiError.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        timestamps = wire.flag(query, "timestamps")

        def line(i: int) -> bytes:
            text = f"{container} {namespace}/{name}: log line {i}\n"
            if timestamps:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
                text = f"{stamp} {text}"
            return text.encode()

        initial = _LOG_BACKLOG
        first = 0
        if "tailLines" in query:
            try:
                first = max(0, initial - int(query["tailLines"]))
            except ValueError:
                raise ApiError.bad_request(f"invalid tailLines {query['tailLines']!r}") from None
        body = b"".join(line(i) for i in range(first, initial))
        headers = wire.api_headers("text/plain")
        if not wire.flag(query, "follow"):
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            if body:
                await response.write(body)
            i = initial
            # Ends when the client leaves (handler cancellation), the pod goes or the server stops.
            while not self.stopping.is_set():
                try:
                    await asyncio.wait_for(self.stopping.wait(), _LOG_INTERVAL)
                    break
                except TimeoutError:
                    pass
                try:
                    self.store.get("pods", name, namespace, copy=False)
                except ApiError:
                    break
                await response.write(line(i))
                i += 1
        return response

    async def _upgrade(self, request: web.BaseRequest, sub: str, namespace: str, name: str) -> web.StreamResponse:
        pod = self.store.get("pods", name, namespace, copy=False)  # 404 before any upgrade
        return await serve_upgrade(request, self.runtime, self.stopping, sub, namespace, pod)
