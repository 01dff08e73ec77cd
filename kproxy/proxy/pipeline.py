"""The request pipeline, assembled in one place and in one visible order.

    errors → Status JSON / kubectl's text answers
      · client address check (authorized IP ranges; every request, static and upgrades too)
      · request-target and Host checks (what Go's HTTP server rejects before any handler)
      · route by prefix (ServeMux rules: cleaning 301s, prefix 301s, 404)
        ├── static: Host check → file server
        └── API:    filter → relay (ordinary or upgrade) → dialer

In: :class:`~kproxy.config.options.Options` and the I/O parts (relay, static files).
Out: the request handler :mod:`kproxy.http.server` runs for every request, and the fast path
it tries first for requests like ones already forwarded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from kproxy.config.options import Options
from kproxy.errors import BadRequest, Forbidden, RequestError
from kproxy.http.server import Answer, FastPath, Request, Response
from kproxy.policy.filters import RequestFilter
from kproxy.policy.routing import redirect_body, upstream_path
from kproxy.policy.service_urls import parse as parse_proxy_url
from kproxy.proxy.access import ClientGate
from kproxy.proxy.relay import Relay, is_upgrade
from kproxy.proxy.static import StaticFiles

__all__ = ["Pipeline", "build_pipeline"]

log = logging.getLogger("kproxy")

Handler = Callable[[Request], Awaitable[Answer]]

_TEXT = "text/plain; charset=utf-8"
_TARGET = "kproxy.proxy_target"  # request key: the proxy URL target, for the access log
_BAD_HOST = re.compile(rb"[ \t\r\n/\\]")
_REMEMBERED = 4096  # forwarding verdicts kept (see build_handler)


def _text(status: int, body: str, **extra: str) -> Response:
    # Go's http.Error: plain text, nosniff, a trailing newline.
    headers = {"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff", **extra}
    return Response(status=status, body=body.encode(), headers=headers)


def _status(exc: RequestError) -> Response:
    return Response(status=exc.status, body=exc.body(), headers={"Content-Type": "application/json"})


def _split_target(request: Request) -> tuple[str, str | None, str | None]:
    """(raw path, raw query or None, host from an absolute-form target or None)."""
    target = request.raw_path
    authority = None
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise BadRequest(f"invalid request target {target[:200]!r}: it must start with /")
        # Absolute form (RFC 9112 §3.2.2): Go takes the host from the URL, not the header.
        authority, slash, rest = rest.partition("/")
        target = slash + rest if slash else "/"
    path, qmark, query = target.partition("?")
    return path, (query if qmark else None), authority


def _request_host(request: Request) -> str:
    host: bytes | None = None
    for name, value in request.raw_headers:
        if len(name) == 4 and name.lower() == b"host":
            if host is not None:
                raise BadRequest("too many Host headers")
            host = value
    if host is None:
        if request.version >= (1, 1):
            raise BadRequest("missing required Host header")
        return ""  # HTTP/1.0 may omit it; the filter then sees an empty host
    if _BAD_HOST.search(host):
        raise BadRequest(f"malformed Host header {host.decode('latin-1')[:200]!r}")
    return host.decode("latin-1")


class Pipeline(NamedTuple):
    handle: Handler
    fast: FastPath | None  # for requests seen before; None when every request is logged


def build_pipeline(options: Options, gate: ClientGate, relay: Relay, static: StaticFiles | None) -> Pipeline:
    router = options.router
    request_filter: RequestFilter | None = options.request_filter
    server_path = options.upstream.server_path
    append = options.upstream.append_server_path
    log_requests = log.isEnabledFor(logging.INFO)

    # Routing, filtering and target building are pure functions of (method, target,
    # host); clients repeat the same few requests, so the verdicts to forward are kept.
    forwards: dict[tuple[str, str, str], tuple[bytes, str | None]] = {}

    def send_on(request: Request, client: str | None, target: bytes, described: str | None) -> Awaitable[Answer]:
        if described is not None and log_requests:
            request[_TARGET] = described
        if is_upgrade(request.raw_headers):
            return upgrade(request, client, target)
        return relay.forward(request, target)

    async def upgrade(request: Request, client: str | None, target: bytes) -> Answer:
        with gate.session(request, client if gate.active else None):
            try:
                return await relay.upgrade(request, target)
            except RequestError as exc:
                # The connection's bytes already belong to the splice: it cannot
                # carry another request, so the error answer ends it.
                log.error("Error while proxying request: %s", exc.message)
                response = _status(exc)
                response.force_close()
                return response

    async def handle(request: Request) -> Answer:
        try:
            resume = request.resume
            if resume is not None:  # what a fast exchange left to do (see Relay.start_fast)
                request.resume = None
                return await resume()
            # Who is asking comes before anything else, for every kind of request.
            client = gate.admit(request) if gate.active else None
            if request.method == "OPTIONS" and request.raw_path == "*":
                return Response(status=200)  # Go's server answers OPTIONS * itself
            raw_path, raw_query, authority = _split_target(request)
            host = authority if authority is not None else _request_host(request)
            key = (request.method, request.raw_path, host)
            decided = forwards.get(key)
            if decided is not None:
                return await send_on(request, client, *decided)
            route = router.route(raw_path, raw_query)
            if route.kind == "redirect":
                assert route.location is not None
                body, content_type = redirect_body(request.method, route.location)
                headers = {"Location": route.location}
                if content_type:
                    headers["Content-Type"] = content_type
                return Response(status=301, body=body, headers=headers)
            if route.kind == "not_found":
                return _text(404, "404 page not found\n")
            if route.kind == "bad_request":
                return _text(400, "400 Bad Request: invalid URL escape\n")

            if route.kind == "static":
                assert static is not None
                # kproxy guards static files with the Host check too (kubectl does not:
                # a DNS-rebinding page could read them).
                if request_filter is not None and not request_filter.allows_host(host):
                    return _forbidden(f"accept-hosts (no pattern matched host {host!r})")
                return await static.handle(request, route.path)

            if request_filter is not None:
                verdict = request_filter.verdict(request.method, route.path, host)
                if not verdict.allowed:
                    log.info("Filter rejecting %s %s %s", request.method, route.path, host)
                    return _forbidden(verdict.rule or "")
            # Service/pod/node proxy URLs: a malformed one gets a 400 naming the problem
            # here, instead of the API server's unhelpful 404 or 503.
            proxy_target = parse_proxy_url(route.raw_path)
            target = upstream_path(route.raw_path, server_path, append)
            if raw_query is not None:
                target += "?" + raw_query
            decided = (target.encode("latin-1", "replace"), proxy_target.describe() if proxy_target else None)
            if len(forwards) >= _REMEMBERED:
                forwards.clear()
            forwards[key] = decided
            return await send_on(request, client, *decided)
        except Forbidden as exc:
            return _status(exc)
        except BadRequest as exc:
            if exc.message.startswith(("too many Host", "missing required Host", "malformed Host")):
                # What Go's server answers before any handler runs.
                return _text(400, f"400 Bad Request: {exc.message}", Connection="close")
            return _status(exc)
        except RequestError as exc:
            log.error("Error while proxying request: %s", exc.message)
            return _status(exc)
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nothing to answer
        except Exception:
            # A bug of ours: say so plainly in the log and to the client, keep serving.
            log.exception("internal error serving %s %s", request.method, request.path)
            return _status(RequestError("kproxy internal error; see its log"))

    def fast(request: Request) -> bool:
        # A request like one forwarded before, sent on with no coroutine: the same checks
        # as handle's, in the same order; anything else is declined and goes there.
        if gate.active or request.raw_path[:1] != "/":
            return False
        try:
            host = _request_host(request)
        except BadRequest:
            return False
        decided = forwards.get((request.method, request.raw_path, host))
        if decided is None or is_upgrade(request.raw_headers):
            return False
        return relay.start_fast(request, decided[0])

    if not log_requests:
        return Pipeline(handle, fast)

    async def handle_and_log(request: Request) -> Answer:
        # An access log line per request (-v=2 and up): decided once, at assembly, so the
        # default configuration pays nothing for it. The query is left out: it may carry
        # tokens some clients put in URLs.
        response = await handle(request)
        target = request.get(_TARGET)
        log.info(
            "%s %s %s %d%s",
            request.remote or "-",
            request.method,
            request.path,
            response.status,
            f" ({target})" if target else "",
        )
        return response

    return Pipeline(handle_and_log, None)


def _forbidden(rule: str) -> Response:
    # kubectl's exact answer, plus a header saying which rule matched, so users can see why.
    safe = rule.encode("ascii", "backslashreplace").decode()[:500]
    return _text(403, "Forbidden\n", **{"X-Kproxy-Rejected-By": safe})
