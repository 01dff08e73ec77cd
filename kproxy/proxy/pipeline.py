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
files, and the :class:`~kproxy.proxy.observe.Observer` when metrics or an access log are
on). Out: :class:`Pipeline` — the handler :mod:`kproxy.http` awaits for every request,
and the fast path (:mod:`kproxy.proxy.fast`) it tries first for requests like ones
already forwarded. Verdicts to forward are remembered in a shared
:class:`~kproxy.proxy.fast.ForwardCache`, which both consult. :meth:`Pipeline.use`
switches both to another relay (a reloaded kubeconfig): requests in flight finish on
the one they started with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from kproxy.config.options import Options
from kproxy.errors import RequestError
from kproxy.http import Answer, Handler, Request, Response, http_error
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.policy.cross_origin import request_origin
from kproxy.policy.filters import RequestFilter
from kproxy.policy.headers import is_upgrade
from kproxy.policy.long_running import is_long_running
from kproxy.policy.request_checks import request_host, split_target
from kproxy.policy.request_info import request_verb
from kproxy.policy.routing import Route, redirect_body, upstream_path
from kproxy.policy.service_urls import parse as parse_proxy_url
from kproxy.proxy.access import ClientGate
from kproxy.proxy.access_log import fixed_parts
from kproxy.proxy.answers import error_answer, forbidden, internal_error
from kproxy.proxy.cross_origin import CrossOrigin
from kproxy.proxy.fast import ClientState, FastPath, Forward, ForwardCache
from kproxy.proxy.identity import Identify, Peer
from kproxy.proxy.observe import Observer, long_running, record_of
from kproxy.proxy.relay import Relay
from kproxy.proxy.upgrade import upgrade

if TYPE_CHECKING:
    from kproxy.proxy.static import StaticFiles

__all__ = ["Pipeline", "build_pipeline"]


class Pipeline:
    """``handle`` for every request; ``fast`` for requests seen before (see the module
    docstring). With an observer, every request is recorded, on either path."""

    def __init__(
        self,
        options: Options,
        gate: ClientGate,
        relay: Relay,
        static: StaticFiles | None,
        observer: Observer | None = None,
    ) -> None:
        self._router = options.router
        self._filter: RequestFilter | None = options.request_filter
        self._server_path = options.upstream.server_path
        self._append = options.upstream.append_server_path
        self._gate = gate
        self._relay = relay
        self._static = static
        self._cross_origin = CrossOrigin(options.cors)
        self._cache = ForwardCache()
        self._observer = observer
        # Who the client is, by its certificate: only with --client-ca-file.
        serving = options.serving_tls
        self._identify = Identify(options.client_identity) if serving is not None and serving.client_ca_file else None
        self.handle: Handler = self._handle if observer is None else self._handle_observed
        self.fast = FastPath(relay, self._cache, gate, observer, self._identify)

    @property
    def relay(self) -> Relay:
        return self._relay

    def use(self, relay: Relay) -> None:
        """Send new requests through ``relay`` (a reloaded upstream). Forwarding verdicts
        are forgotten: the server's path, and so every target, may have changed."""
        self._relay = relay
        self._server_path = relay.upstream.server_path
        self._append = relay.upstream.append_server_path
        self._cache.verdicts.clear()
        self.fast.use(relay)

    async def _handle(self, request: Request) -> Answer:
        try:
            # Who is asking comes before anything else, for every kind of request.
            client = self._gate.admit(request) if self._gate.active else None
            record = record_of(request) if self._observer is not None else None
            if record is not None and client is not None:
                record.client = client
            peer = None
            if self._identify is not None:
                peer = ClientState.of(request, self._identify, self._observer).peer
                if peer is not None:
                    if record is not None and peer.identity is not None:
                        record.user = peer.identity.user
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
                forward = self._decide(request.method, raw_path, route, raw_query)
                self._cache.remember(request.method, request.raw_path, host, forward)
            return await self._send_on(request, client, forward, peer)
        except RequestError as exc:
            record = record_of(request)
            if record is not None:
                record.ended_by(exc)
            return error_answer(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nothing to answer
        except Exception:
            return internal_error(request)

    def _decide(self, method: str, raw_path: str, route: Route, raw_query: str | None) -> Forward:
        # Service/pod/node proxy URLs: a malformed one gets a 400 naming the problem
        # here (raised by parse), instead of the API server's unhelpful 404 or 503.
        proxy_target = parse_proxy_url(route.raw_path)
        target = upstream_path(route.raw_path, self._server_path, self._append)
        if raw_query is not None:
            target += "?" + raw_query
        verb = request_verb(method, route.path, raw_query)
        described = proxy_target.describe() if proxy_target else None
        head, tail = fixed_parts(method, raw_path, verb, described) if self._observer is not None else ("", "")
        return Forward(
            target.encode("latin-1", "replace"),
            described,
            verb,
            long_running(verb, raw_query),
            head,
            tail,
            tally.stats(verb) if self._observer is not None else None,
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
        impersonate = peer.impersonation if peer is not None else None
        upgrading = is_upgrade(request.raw_headers)
        if self._observer is not None:
            record = record_of(request)
            if record is not None and record.verb is None:
                if upgrading:
                    record.decided("connect", "upgrade", forward.described)
                else:
                    record.decided(forward.verb, forward.kind, forward.described)
        if not upgrading:
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

    def _handle_observed(self, request: Request) -> Awaitable[Answer]:
        # Every request is recorded (metrics, the access log): decided once, at assembly,
        # so that without them the default configuration pays nothing for it. A request
        # the fast path started over keeps its record (and its start time).
        observer = self._observer
        assert observer is not None
        record = record_of(request) or observer.start(request, request.remote)
        return observer.observed(record, lambda: self._handle(request))


def build_pipeline(
    options: Options, gate: ClientGate, relay: Relay, static: StaticFiles | None, observer: Observer | None = None
) -> Pipeline:
    return Pipeline(options, gate, relay, static, observer)
