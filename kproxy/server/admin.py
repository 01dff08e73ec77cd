"""The admin listener (``--metrics-address``): ``/metrics``, ``/livez`` and ``/readyz``.

In: where to listen (:class:`~kproxy.config.observability.Observability`), the client gate
(``--authorized-ip-ranges`` applies here too; nothing else of the proxy does: no filter,
no Host check, nothing is ever proxied), the :class:`~kproxy.server.readiness.Readiness`
and what renders the metrics. Out: a plain-HTTP listener on kproxy's own HTTP server:

* ``GET /metrics``: the Prometheus text format;
* ``GET /livez``: ``200 ok`` while the process serves;
* ``GET /readyz``: ``200 ok`` when the API server answered kproxy's last probe, else
  ``503`` and the reason in one line (also from the moment a graceful stop begins).

HEAD works as GET; other methods get 405, other paths 404 (Go's plain texts). It is
bound in :meth:`AdminServer.start`, before the proxy's ``Starting to serve on`` line;
an address that cannot be bound is a :class:`~kproxy.errors.ConfigError` naming the flag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kproxy.config.observability import Observability
from kproxy.errors import ConfigError, Forbidden
from kproxy.http import TEXT_PLAIN, Answer, HTTPServer, Request, Response, http_error
from kproxy.log import NOTICE, log
from kproxy.metrics import tally
from kproxy.proxy.access import ClientGate
from kproxy.server.readiness import Readiness
from kproxy.server.sockets import tcp_socket

__all__ = ["AdminServer"]

_NO_CACHE = {"Cache-Control": "no-cache, private", "X-Content-Type-Options": "nosniff"}


class AdminServer:
    """The admin listener (see the module docstring)."""

    def __init__(
        self,
        observe: Observability,
        gate: ClientGate,
        readiness: Readiness,
        metrics: Callable[[], bytes],
        metrics_type: str,
    ) -> None:
        self._observe = observe
        self._gate = gate
        self._readiness = readiness
        self._metrics = metrics
        self._metrics_type = metrics_type
        self._server: asyncio.AbstractServer | None = None
        self._web: HTTPServer | None = None
        self.address = ""

    async def start(self) -> None:
        observe = self._observe
        assert observe.metrics_port is not None
        host = observe.metrics_host
        dual = host in ("", "0.0.0.0")  # Go's ":PORT" and 0.0.0.0: every address, both families
        try:
            sock = tcp_socket("::" if dual else host, observe.metrics_port, dual)
        except ConfigError as exc:
            raise ConfigError(f"--metrics-address {observe.metrics_display}: {exc}") from None
        loop = asyncio.get_running_loop()
        self._web = HTTPServer(self._handle, loop)
        self._server = await loop.create_server(self._web, sock=sock, backlog=128)
        bound_host, port = sock.getsockname()[:2]
        self.address = f"[{bound_host}]:{port}" if ":" in bound_host else f"{bound_host}:{port}"
        log.log(NOTICE, "serving metrics and health on http://%s (/metrics, /livez, /readyz)", self.address)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._web is not None:
            await self._web.shutdown(1.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, request: Request) -> Answer:
        if self._gate.active:
            try:
                self._gate.admit(request)
            except Forbidden as exc:
                tally.reject("ranges")
                return http_error(403, f"403 Forbidden: {exc.message}")
        path = request.raw_path.partition("?")[0]
        if path not in ("/metrics", "/livez", "/readyz"):
            return http_error(404, "404 page not found")
        if request.method not in ("GET", "HEAD"):
            return http_error(405, "405 method not allowed", {"Allow": "GET, HEAD"})
        if path == "/metrics":
            return Response(200, body=self._metrics(), headers={"Content-Type": self._metrics_type, **_NO_CACHE})
        if path == "/livez":
            return _text(200, "ok")
        ready, reason = self._readiness.state()
        return _text(200, "ok") if ready else _text(503, reason)


def _text(status: int, text: str) -> Response:
    return Response(status, body=f"{text}\n".encode(), headers={"Content-Type": TEXT_PLAIN, **_NO_CACHE})
