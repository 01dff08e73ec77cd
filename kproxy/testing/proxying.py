"""The fake API server's ``proxy`` subresources: services, pods and nodes to local backends.

Nothing runs in the fake cluster, so a test registers the HTTP server that stands for a
target (``FakeAPIServer.register_backend``)::

    api.register_backend("service", "default", "web", "http", "http://127.0.0.1:PORT")
    api.register_backend("pod", "default", "web-0", 8080, "http://127.0.0.1:PORT")
    api.register_backend("node", "", "demo-node", 10250, "https://127.0.0.1:PORT")

Resolution follows kube-apiserver 1.32 (``ResourceLocation`` of each registry):

* the ``[SCHEME:]NAME[:PORT]`` segment is split as Go's ``SplitSchemeNamePort`` does; a
  bad one is ``400 invalid service request "ID"`` (pod, node alike);
* the object must exist: ``404 services "x" not found``;
* service: a port *number* is looked up among ``spec.ports[].port`` and stands for that
  port's name (none: ``503 no service port N found for service "x"``); a name, or "" for
  an unnamed single port, must be a port's name. A backend registered under that port's
  name or number answers; otherwise ``503 no endpoints available for service "ID"``, the
  answer of a service without ready endpoints (also for a single port that has a name
  when the URL gives none — a classic surprise that ``kubectl cluster-info`` avoids by
  always writing the port name);
* pod: no port means the first ``containerPort``; node: no port means the kubelet's 10250.
  Without a backend: ``503 error trying to reach service: dial tcp IP:PORT: connect:
  connection refused``, what a dead pod gives;
* a GET or HEAD of ``.../proxy`` (nothing after it) is a 301 to ``.../proxy/``.

Forwarding: the method, the remaining path and the query exactly as they arrived, the
body, and the headers minus hop-by-hop ones, ``Host``, ``Authorization`` and
``Impersonate-*`` (kube-apiserver drops credentials once it has authenticated), plus
``X-Forwarded-For``. The scheme is the URL's if it names one, else the registered URL's;
TLS backends are not verified (kube-apiserver's proxy transport does not verify either).
The answer is relayed as it comes, compressed bodies included.

Knowingly different: kube-apiserver may hand the backend a decoded and re-escaped
remaining path; the fake passes the raw one, so tests see exactly what kproxy sent.
No upgrades (WebSocket) through the proxy; no HTML link rewriting.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from kproxy.testing.runtime import Network
from kproxy.testing.status import ApiError
from kproxy.testing.store import Store

__all__ = ["Backends", "handle_proxy"]

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "Host",
    )
)
_KINDS = {"services": "service", "pods": "pod", "nodes": "node"}
_KUBELET_PORT = "10250"


class Backends:
    """Which local HTTP server stands for which (kind, namespace, name, port)."""

    def __init__(self) -> None:
        self._urls: dict[tuple[str, str, str, str], str] = {}

    def register(self, kind: str, namespace: str, name: str, port: str | int, url: str) -> None:
        """``port``: a service port's name or number, a pod's or node's port number ("" or
        the default port for a URL without one). ``url``: ``http[s]://HOST:PORT``."""
        if kind not in _KINDS.values():
            raise ValueError(f"kind must be service, pod or node, not {kind!r}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"backend url must be http[s]://HOST:PORT, not {url!r}")
        self._urls[(kind, "" if kind == "node" else namespace, name, str(port))] = url

    def unregister(self, kind: str, namespace: str, name: str, port: str | int) -> None:
        self._urls.pop((kind, "" if kind == "node" else namespace, name, str(port)), None)

    def find(self, kind: str, namespace: str, name: str, ports: tuple[str, ...]) -> str | None:
        for port in ports:
            url = self._urls.get((kind, namespace, name, port))
            if url is not None:
                return url
        return None


def _split_id(resource: str, text: str) -> tuple[str, str, str]:
    """Go's ``utilnet.SplitSchemeNamePort``, with the registry's 400 for a bad one."""
    parts = text.split(":")
    scheme, name, port = "", parts[0], ""
    if len(parts) == 2:
        name, port = parts
    elif len(parts) == 3:
        scheme, name, port = parts
    if len(parts) > 3 or not name or scheme not in ("", "http", "https"):
        raise ApiError.bad_request(f'invalid {_KINDS[resource]} request "{text}"')
    return scheme, name, port


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


async def _service_backend(
    store: Store, backends: Backends, network: Network | None, namespace: str, id_text: str, name: str, port: str
) -> str:
    service = store.get("services", name, namespace, copy=False)
    ports: list[dict[str, Any]] = service.get("spec", {}).get("ports", [])
    if port.isascii() and port.isdigit():
        entry = next((p for p in ports if p.get("port") == int(port)), None)
        if entry is None:
            raise _unavailable(f'no service port {int(port)} found for service "{name}"')
    else:
        entry = next((p for p in ports if p.get("name", "") == port), None)
    url = None
    if entry is not None:
        keys = (str(entry.get("name", "")), str(entry.get("port", "")))
        url = backends.find("service", namespace, name, keys)
        if url is None and network is not None:
            found = await network.lookup(f"{name}.{namespace}", int(entry.get("port", 0)), namespace, "")
            url = f"http://{found[0]}:{found[1]}" if found else None
    if url is None:
        raise _unavailable(f'no endpoints available for service "{id_text}"')
    return url


async def _pod_or_node_backend(
    store: Store, backends: Backends, network: Network | None, kind: str, namespace: str, name: str, port: str
) -> str:
    obj = store.get(kind + "s", name, namespace or None, copy=False)
    if kind == "pod":
        address = obj.get("status", {}).get("podIP", "")
        if not port:
            declared = [p for c in obj.get("spec", {}).get("containers", []) for p in c.get("ports", [])]
            port = str(declared[0]["containerPort"]) if declared else ""
    else:
        addresses = obj.get("status", {}).get("addresses", [])
        address = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), name)
        port = port or _KUBELET_PORT
    url = backends.find(kind, namespace, name, (port,))
    if url is None and network is not None and kind == "pod" and port.isdigit():
        found = await network.resolve(namespace, name, int(port))
        url = f"http://{found[0]}:{found[1]}" if found else None
    if url is None:
        where = f"{address}:{port}" if port else address
        raise _unavailable(f"error trying to reach service: dial tcp {where}: connect: connection refused")
    return url


async def handle_proxy(
    request: web.BaseRequest,
    store: Store,
    backends: Backends,
    resource: str,
    namespace: str | None,
    id_text: str,
    network: Network | None = None,
) -> web.StreamResponse:
    """Answer ``.../RESOURCE/ID/proxy[/...]``; ``id_text`` is the decoded ID segment."""
    kind = _KINDS[resource]
    ns = namespace or ""
    scheme, name, port = _split_id(resource, id_text)
    if kind == "service":
        url = await _service_backend(store, backends, network, ns, id_text, name, port)
    else:
        url = await _pod_or_node_backend(store, backends, network, kind, ns, name, port)
    raw_path, _, raw_query = request.raw_path.partition("?")
    # The proxy subresource is segment 7 (.../namespaces/NS/RESOURCE/ID/proxy) or 5.
    segments = raw_path.split("/")
    index = 7 if namespace is not None else 5
    rest = "/" + "/".join(segments[index + 1 :]) if len(segments) > index + 1 else ""
    if not rest and request.method in ("GET", "HEAD"):
        # kube-apiserver's proxyRedirectsforRootPath (kubernetes#4958): relative links need the "/".
        location = raw_path + "/" + ("?" + raw_query if raw_query else "")
        return web.Response(status=301, headers={"Location": location})
    backend = urlsplit(url)
    target = f"{scheme or backend.scheme}://{backend.netloc}{rest or '/'}"
    if raw_query:
        target += "?" + raw_query
    return await _forward(request, target)


async def _forward(request: web.BaseRequest, target: str) -> web.StreamResponse:
    headers = [
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in _HOP_BY_HOP and k.lower() != "authorization" and not k.lower().startswith("impersonate-")
    ]
    if request.remote:
        prior = request.headers.get("X-Forwarded-For")
        headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
        headers.append(("X-Forwarded-For", f"{prior}, {request.remote}" if prior else request.remote))
    body = await request.read()
    timeout = aiohttp.ClientTimeout(total=None, connect=5)
    async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as session:
        try:
            upstream = await session.request(
                request.method,
                URL(target, encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                ssl=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise _unavailable(f"error trying to reach service: {exc}") from exc
        async with upstream:
            out = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP]
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out)
            if upstream.headers.get("Content-Length") is not None and request.method != "HEAD":
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
