"""The pod subresources that are streams, not objects: ``log`` and the upgrades.

``log`` answers the container's lines (``tailLines``, ``timestamps``, ``previous`` as
kubelet refuses it), and with ``follow=true`` adds a line every 0.2 s until the client
leaves, the pod goes or the server stops. ``exec``, ``attach`` and ``portforward`` need
an upgrade request (``upgrade``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Mapping

from aiohttp import web

from kproxy.testing import wire
from kproxy.testing.runtime import PodRuntime
from kproxy.testing.status import ApiError, not_allowed
from kproxy.testing.store import Store
from kproxy.testing.upgrade import serve_upgrade

__all__ = ["serve_log", "serve_pod_upgrade"]

_LOG_INTERVAL = 0.2
_LOG_BACKLOG = 10  # lines a pod has logged before anyone asks


async def serve_log(
    request: web.BaseRequest, store: Store, stopping: asyncio.Event, namespace: str, name: str, query: Mapping[str, str]
) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise not_allowed()
    pod = store.get("pods", name, namespace, copy=False)
    containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    ephemeral = [c["name"] for c in pod.get("spec", {}).get("ephemeralContainers") or []]
    container = query.get("container", "")
    if not container:
        if len(containers) != 1:
            raise ApiError.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            )
        container = containers[0]
    elif container not in containers + ephemeral:
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
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), _LOG_INTERVAL)
                break
            except TimeoutError:
                pass
            try:
                store.get("pods", name, namespace, copy=False)
            except ApiError:
                break
            await response.write(line(i))
            i += 1
    return response


async def serve_pod_upgrade(
    request: web.BaseRequest,
    store: Store,
    runtime: PodRuntime,
    stopping: asyncio.Event,
    sub: str,
    namespace: str,
    name: str,
) -> web.StreamResponse:
    pod = store.get("pods", name, namespace, copy=False)  # 404 before any upgrade
    return await serve_upgrade(request, runtime, stopping, sub, namespace, pod)
