"""Watches on the wire: one ``{"type": ..., "object": ...}`` line per event, as kube-apiserver streams them.

In: a :class:`~kproxy.testing.watches.Watch` from the store; out: a chunked answer, one
write (so one chunk) per event, sent the moment the store reports the change, until
``timeoutSeconds`` (default kube-apiserver's ``--min-request-timeout``, 1800 s), the
client leaving or the server stopping. As ``Table`` the column definitions come with
the first event only; ``outbound`` turns stored objects into the served version's shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from kproxy.testing import tables, wire
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store
from kproxy.testing.watches import Watch, WatchEvent

__all__ = ["serve_watch"]

_DEFAULT_WATCH_TIMEOUT = 1800.0  # kube-apiserver's --min-request-timeout
Outbound = Callable[[dict[str, Any]], dict[str, Any]]


class _EventShape:
    """Turns watch events into what ``Accept`` asked for; a Table's columns come with the first."""

    def __init__(self, resource: str, negotiated: wire.Negotiated, include_object: str, outbound: Outbound) -> None:
        self.resource = resource
        self.outbound = outbound
        self.negotiated = negotiated
        self.include_object = include_object
        self.first = True

    def __call__(self, event: WatchEvent) -> dict[str, Any]:
        if event.type not in ("ADDED", "MODIFIED", "DELETED"):
            return event.object  # BOOKMARK and ERROR objects go out as they are
        obj = self.outbound(event.object)
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


async def serve_watch(
    request: web.BaseRequest,
    store: Store,
    resource: str,
    namespace: str | None,
    query: Mapping[str, str],
    outbound: Outbound,
) -> web.StreamResponse:
    negotiated = wire.negotiate(request, allow_shapes=True)
    try:
        timeout = float(query.get("timeoutSeconds") or _DEFAULT_WATCH_TIMEOUT)
    except ValueError:
        raise ApiError.bad_request(f"invalid timeoutSeconds {query['timeoutSeconds']!r}") from None
    watch = store.watch(
        resource,
        namespace,
        resource_version=query.get("resourceVersion", ""),
        label_selector=query.get("labelSelector", ""),
        field_selector=query.get("fieldSelector", ""),
        send_initial_events=wire.flag(query, "sendInitialEvents"),
    )
    try:
        return await _stream_watch(request, resource, watch, negotiated, query, timeout, outbound)
    finally:
        watch.close()


async def _stream_watch(
    request: web.BaseRequest,
    resource: str,
    watch: Watch,
    negotiated: wire.Negotiated,
    query: Mapping[str, str],
    timeout: float,
    outbound: Outbound,
) -> web.StreamResponse:
    response = web.StreamResponse(headers=wire.api_headers(negotiated.fmt))
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    shape = _EventShape(resource, negotiated, query.get("includeObject", "Metadata"), outbound)
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
