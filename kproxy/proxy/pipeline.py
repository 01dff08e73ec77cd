"""The request pipeline, assembled in one place and in one visible order.

    errors → Status JSON / kubectl's text answers
      · client address check (authorized IP ranges; every request, static and upgrades too)
      · client certificate check (--client-ca-file: 401 without a valid one; who the client is)
      · request-target and Host checks (what Go's HTTP server rejects before any handler)
      · cross-origin guard (requests with Origin: a foreign page may only GET, HEAD and
        OPTIONS, never upgrade; preflights answered here; allowed origins' answers get
        the CORS grant)
      · route by prefix (ServeMux rules: cleaning 301s, prefix 301s, 404)
        ├── static: Host check → file server
        └── API:    filter → relay (ordinary or upgrade) → dialer

In: :class:`~kproxy.config.options.Options` and the I/O parts (gate, relay, static
files). Out: :class:`Pipeline` — the handler :mod:`kproxy.http` awaits for every request,
and the fast path (:mod:`kproxy.proxy.fast`) it tries first for requests like ones
already forwarded. Verdicts to forward are remembered in a shared
:class:`~kproxy.proxy.fast.ForwardCache`, which both consult.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kproxy.config.options import Options
from kproxy.errors import RequestError
from kproxy.http import Answer, FastPath, Handler, Request, Response, http_error
from kproxy.log import log
from kproxy.policy.cross_origin import request_origin
from kproxy.policy.filters import RequestFilter
from kproxy.policy.headers import is_upgrade
from kproxy.policy.long_running import is_long_running
from kproxy.policy.request_checks import request_host, split_target
from kproxy.policy.routing import Route, redirect_body, upstream_path
from kproxy.policy.service_urls import parse as parse_proxy_url
from kproxy.proxy.access import ClientGate
from kproxy.proxy.answers import error_answer, forbidden, internal_error
from kproxy.proxy.cross_origin import CrossOrigin
from kproxy.proxy.fast import ClientState, Forward, ForwardCache
from kproxy.proxy.fast import FastPath as Fast
from kproxy.proxy.identity import Identify, Peer
from kproxy.proxy.relay import Relay
from kproxy.proxy.upgrade import upgrade

if TYPE_CHECKING:
    from kproxy.proxy.static import StaticFiles

__all__ = ["Pipeline", "build_pipeline"]


class Pipeline:
    """``handle`` for every request; ``fast`` for requests seen before (None when each
    request is logged at -v=2, which wants every status from the ordinary path)."""

    def __init__(self, options: Options, gate: ClientGate, relay: Relay, static: StaticFiles | None) -> None:
        self._router = options.router
        self._filter: RequestFilter | None = options.request_filter
        self._server_path = options.upstream.server_path
        self._append = options.upstream.append_server_path
        self._gate = gate
        self._relay = relay
        self._static = static
        self._cross_origin = CrossOrigin(options.cors)
        self._cache = ForwardCache()
        # Who the client is, by its certificate: only with --client-ca-file.
        serving = options.serving_tls
        self._identify = Identify(options.client_identity) if serving is not None and serving.client_ca_file else None
        self._log_requests = log.isEnabledFor(logging.INFO)
        self.handle: Handler = self._handle_and_log if self._log_requests else self._handle
        self.fast: FastPath | None = None if self._log_requests else Fast(relay, self._cache, gate, self._identify)

    async def _handle(self, request: Request) -> Answer:
        try:
            # Who is asking comes before anything else, for every kind of request.
            client = self._gate.admit(request) if self._gate.active else None
            peer = None
            if self._identify is not None:
                peer = ClientState.of(request, self._identify).peer
                if peer is not None:
                    peer.check()  # 401 for a client without a valid certificate
            if request.method == "OPTIONS" and request.raw_path == "*":
                return Response(status=200)  # Go's server answers OPTIONS * itself
            raw_path, raw_query, authority = split_target(request.raw_path)
            host = authority if authority is not None else request_host(request.raw_headers, request.version)
            origin = request_origin(request.raw_headers)
            if origin is not None:  # a browser's request: which page sent it?
                refusal = self._cross_origin.check(request, origin, host)
                if refusal is not None:
                    return refusal
            forward = self._cache.get(request.method, request.raw_path, host)
            if forward is None:
                route = self._router.route(raw_path, raw_query)
                if route.kind != "api":
                    return await self._not_api(request, route, host)
                if self._filter is not None:
                    verdict = self._filter.verdict(request.method, route.path, host)
                    if not verdict.allowed:
                        log.info("Filter rejecting %s %s %s", request.method, route.path, host)
                        return forbidden(verdict.rule or "")
                forward = self._decide(request.method, route, raw_query)
                self._cache.remember(request.method, request.raw_path, host, forward)
            return await self._send_on(request, client, forward, peer)
        except RequestError as exc:
            return error_answer(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nothing to answer
        except Exception:
            return internal_error(request)

    def _decide(self, method: str, route: Route, raw_query: str | None) -> Forward:
        # Service/pod/node proxy URLs: a malformed one gets a 400 naming the problem
        # here (raised by parse), instead of the API server's unhelpful 404 or 503.
        proxy_target = parse_proxy_url(route.raw_path)
        target = upstream_path(route.raw_path, self._server_path, self._append)
        if raw_query is not None:
            target += "?" + raw_query
        return Forward(
            target.encode("latin-1", "replace"),
            proxy_target.describe() if proxy_target else None,
            is_long_running(method, route.path, raw_query),
        )

    async def _not_api(self, request: Request, route: Route, host: str) -> Answer:
        """Redirects, 404s, bad escapes and static files: what does not go upstream."""
        if route.kind == "redirect":
            assert route.location is not None
            body, content_type = redirect_body(request.method, route.location)
            headers = {"Location": route.location}
            if content_type:
                headers["Content-Type"] = content_type
            return Response(status=301, body=body, headers=headers)
        if route.kind == "not_found":
            return http_error(404, "404 page not found")
        if route.kind == "bad_request":
            return http_error(400, "400 Bad Request: invalid URL escape")
        assert route.kind == "static" and self._static is not None
        # kproxy guards static files with the Host check too (kubectl does not: a
        # DNS-rebinding page could read them).
        if self._filter is not None and not self._filter.allows_host(host):
            return forbidden(f"accept-hosts (no pattern matched host {host!r})")
        return await self._static.handle(request, route.path)

    async def _send_on(self, request: Request, client: str | None, forward: Forward, peer: Peer | None) -> Answer:
        request.note = forward.described
        impersonate = peer.impersonation if peer is not None else None
        if not is_upgrade(request.raw_headers):
            return await self._relay.forward(request, forward.target, impersonate, forward.long_running)
        gate = self._gate
        with gate.session(request, client if gate.active else None):
            try:
                return await upgrade(self._relay, request, forward.target, impersonate)
            except RequestError as exc:
                # The connection's bytes already belong to the splice: it cannot carry
                # another request, so the error answer ends it.
                response = error_answer(exc)
                response.force_close()
                return response

    async def _handle_and_log(self, request: Request) -> Answer:
        # An access log line per request (-v=2 and up): decided once, at assembly, so the
        # default configuration pays nothing for it. The query is left out: it may carry
        # tokens some clients put in URLs.
        response = await self._handle(request)
        target = request.note
        log.info(
            "%s %s %s %d%s",
            request.remote or "-",
            request.method,
            request.path,
            response.status,
            f" ({target})" if target else "",
        )
        return response


def build_pipeline(options: Options, gate: ClientGate, relay: Relay, static: StaticFiles | None) -> Pipeline:
    return Pipeline(options, gate, relay, static)
