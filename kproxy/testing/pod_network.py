"""The fake cluster's network: what a pod's port, a service or a cluster address reaches.

There are no containers, so the fake runs small stand-ins itself, on loopback only:

* every pod whose container image is ``nginx`` (any registry or tag) serves HTTP on its
  declared TCP ports (80 when none is declared): ``/`` and ``/index.html`` answer a small
  HTML page naming the pod, anything else nginx's 404 page;
* CoreDNS pods answer HTTP on their ports with a page saying DNS is not served over
  HTTP (and Prometheus-style text on ``/metrics``), so the proxy URL ``kubectl
  cluster-info`` prints answers.

One listener per pod and port, opened when first reached (port-forward, the ``proxy``
subresources, an exec'd ``curl``) and closed when the pod goes or the server stops.
A test may still map any pod port to a server of its own
(``runtime.forward_port``); that mapping wins.

:meth:`PodNetwork.resolve` answers for a pod's port; :meth:`PodNetwork.lookup` for what
a process in a pod dials: ``localhost`` (its own pod), a pod IP, a service's cluster IP
or DNS name (``NAME``, ``NAME.NS``, ``NAME.NS.svc``, ``NAME.NS.svc.cluster.local``),
through the service's endpoints to a ready pod. Nothing else is reachable.
"""

from __future__ import annotations

import asyncio
import html
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kproxy.testing.store import Store

__all__ = ["PodNetwork"]

Obj = dict[str, Any]
_CLUSTER_DOMAIN = "cluster.local"
_NGINX_PAGE = """<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body>
<h1>Welcome to nginx!</h1>
<p>Served by pod <b>{pod}</b> in namespace <b>{namespace}</b> of kproxy's demo cluster.</p>
<p>This is the fake API server's stand-in for nginx: no container runs, but this page
came through the service proxy, a port-forward or an exec'd curl, just as nginx's would.</p>
</body>
</html>
"""
_NOT_FOUND_PAGE = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n"
    "<hr><center>nginx/1.27.3</center>\r\n</body>\r\n</html>\r\n"
)


def _app_of(pod: Obj) -> str:
    """Which stand-in serves ``pod``: ``nginx``, ``coredns`` or ``""`` (nothing listens)."""
    for container in pod.get("spec", {}).get("containers") or []:
        image = str(container.get("image", "")).rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        if image in ("nginx", "coredns"):
            return image
    return ""


def _declared_ports(pod: Obj) -> set[int]:
    ports = {
        int(p["containerPort"])
        for c in pod.get("spec", {}).get("containers") or []
        for p in c.get("ports") or []
        if isinstance(p, dict) and str(p.get("containerPort", "")).isdigit()
    }
    return ports or {80}


class PodNetwork:
    """The stand-in servers, and name and address resolution inside the cluster."""

    def __init__(self, store: Store, forwarded: Callable[[str, str, int], tuple[str, int] | None]) -> None:
        self.store = store
        self._forwarded = forwarded  # the test's own mappings (PodRuntime.port_target)
        self._sites: dict[tuple[str, str, str, int], tuple[web.AppRunner, int]] = {}
        self._lock = asyncio.Lock()

    async def resolve(self, namespace: str, pod_name: str, port: int) -> tuple[str, int] | None:
        """The loopback address behind ``pod:port``, or None (connection refused)."""
        mapped = self._forwarded(namespace, pod_name, port)
        if mapped is not None:
            return mapped
        pod = self.store.find("pods", pod_name, namespace)
        if pod is None:
            return None
        app = _app_of(pod)
        if not app or (app == "nginx" and port not in _declared_ports(pod)):
            return None
        uid = pod["metadata"]["uid"]
        async with self._lock:
            self._forget_gone()
            key = (namespace, pod_name, uid, port)
            if key not in self._sites:
                self._sites[key] = await self._serve(app, namespace, pod_name)
            return "127.0.0.1", self._sites[key][1]

    async def lookup(self, host: str, port: int, namespace: str, pod_name: str) -> tuple[str, int] | None:
        """What a process in ``namespace/pod_name`` reaches when it dials ``host:port``."""
        host = host.strip("[]").lower().rstrip(".")
        if host in ("localhost", "127.0.0.1", "::1"):
            return await self.resolve(namespace, pod_name, port)
        for pod in self.store.items("pods"):
            if (pod.get("status") or {}).get("podIP") == host:
                return await self.resolve(pod["metadata"]["namespace"], pod["metadata"]["name"], port)
        service = self._service(host, namespace)
        if service is None:
            return None
        return await self._through_service(service, port)

    def _service(self, host: str, namespace: str) -> Obj | None:
        for service in self.store.items("services"):
            meta = service["metadata"]
            name, ns = meta["name"], meta["namespace"]
            names = {f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{_CLUSTER_DOMAIN}"}
            if ns == namespace:
                names.add(name)
            if host in names or host == (service.get("spec") or {}).get("clusterIP"):
                return service
        return None

    async def _through_service(self, service: Obj, port: int) -> tuple[str, int] | None:
        meta = service["metadata"]
        spec_port = next((p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == port), None)
        if spec_port is None:
            return None
        endpoints = self.store.find("endpoints", meta["name"], meta["namespace"]) or {}
        for subset in endpoints.get("subsets") or []:
            target = next(
                (p for p in subset.get("ports") or [] if p.get("name", "") == spec_port.get("name", "")), None
            )
            for address in subset.get("addresses") or []:
                ref = address.get("targetRef") or {}
                if target is not None and ref.get("kind") == "Pod":
                    found = await self.resolve(
                        ref.get("namespace", meta["namespace"]), ref["name"], int(target["port"])
                    )
                    if found is not None:
                        return found
        return None

    def _forget_gone(self) -> None:
        for key in list(self._sites):
            ns, name, uid, _ = key
            pod = self.store.find("pods", name, ns)
            if pod is None or pod["metadata"]["uid"] != uid:
                runner, _ = self._sites.pop(key)
                asyncio.ensure_future(runner.cleanup())

    async def _serve(self, app_name: str, namespace: str, pod_name: str) -> tuple[web.AppRunner, int]:
        app = web.Application()
        page = _NGINX_PAGE.format(pod=html.escape(pod_name), namespace=html.escape(namespace))

        async def nginx(request: web.Request) -> web.Response:
            headers = {"Server": "nginx/1.27.3"}
            if request.path in ("/", "/index.html"):
                return web.Response(text=page, content_type="text/html", headers=headers)
            return web.Response(status=404, text=_NOT_FOUND_PAGE, content_type="text/html", headers=headers)

        async def coredns(request: web.Request) -> web.Response:
            if request.path == "/metrics":
                return web.Response(text='coredns_build_info{version="1.11.3"} 1\n', content_type="text/plain")
            text = f"{pod_name}: CoreDNS in kproxy's demo cluster; DNS is not served over HTTP (try /metrics)\n"
            return web.Response(text=text, content_type="text/plain")

        app.router.add_route("*", "/{tail:.*}", nginx if app_name == "nginx" else coredns)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        return runner, int(sock.getsockname()[1])

    async def close(self) -> None:
        sites, self._sites = self._sites, {}
        for runner, _ in sites.values():
            await runner.cleanup()
