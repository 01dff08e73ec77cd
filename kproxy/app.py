"""The request pipeline, assembled in one place and in one visible order.

    errors → Status JSON / kubectl's text answers
      · client address check (authorized IP ranges; every request, static and upgrades too)
      · request-target and Host checks (what Go's HTTP server rejects before any handler)
      · route by prefix (ServeMux rules: cleaning 301s, prefix 301s, 404)
        ├── static: Host check → file server
        └── API:    filter → relay (ordinary or upgrade) → dialer

In: :class:`~kproxy.options.Options` and the I/O parts (relay, static files).
Out: an aiohttp low-level request handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .access import ClientGate
from .errors import BadRequest, Forbidden, RequestError
from .filters import RequestFilter
from .options import Options
from .relay import Relay, is_upgrade
from .routing import redirect_body, upstream_path
from .service_urls import parse as parse_proxy_url
from .static import StaticFiles

__all__ = ["build_handler"]

log = logging.getLogger("kproxy")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_TEXT = "text/plain; charset=utf-8"
_TARGET = "kproxy.proxy_target"  # request key: the proxy URL target, for the access log


def _text(status: int, body: str, **extra: str) -> web.Response:
    # Go's http.Error: plain text, nosniff, a trailing newline.
    headers = {"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff", **extra}
    return web.Response(status=status, body=body.encode(), headers=headers)


def _status(exc: RequestError) -> web.Response:
    return web.Response(
        status=exc.status, body=exc.body(), headers={"Content-Type": "application/json"}
    )


def _split_target(request: web.BaseRequest) -> tuple[str, str | None, str | None]:
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


def _request_host(request: web.BaseRequest) -> str:
    hosts = request.headers.getall("Host", ())
    if len(hosts) > 1:
        raise BadRequest("too many Host headers")
    if not hosts:
        if request.version >= (1, 1):
            raise BadRequest("missing required Host header")
        return ""  # HTTP/1.0 may omit it; the filter then sees an empty host
    host = hosts[0]
    if any(c in host for c in " \t\r\n/\\"):
        raise BadRequest(f"malformed Host header {host[:200]!r}")
    return host


def build_handler(options: Options, gate: ClientGate, relay: Relay, static: StaticFiles | None) -> Handler:
    router = options.router
    request_filter: RequestFilter | None = options.request_filter
    server_path = options.upstream.server_path
    append = options.upstream.append_server_path
    log_requests = log.isEnabledFor(logging.INFO)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        try:
            # Who is asking comes before anything else, for every kind of request.
            client = gate.admit(request) if gate.active else None
            if request.method == "OPTIONS" and request.raw_path == "*":
                return web.Response(status=200)  # Go's server answers OPTIONS * itself
            raw_path, raw_query, authority = _split_target(request)
            host = authority if authority is not None else _request_host(request)
            route = router.route(raw_path, raw_query)
            if route.kind == "redirect":
                assert route.location is not None
                body, content_type = redirect_body(request.method, route.location)
                headers = {"Location": route.location}
                if content_type:
                    headers["Content-Type"] = content_type
                return web.Response(status=301, body=body, headers=headers)
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
            if proxy_target is not None and log_requests:
                request[_TARGET] = proxy_target.describe()
            target = upstream_path(route.raw_path, server_path, append)
            if raw_query is not None:
                target += "?" + raw_query
            target_bytes = target.encode("latin-1", "replace")
            if is_upgrade(request.raw_headers):
                with gate.session(request, client if gate.active else None):
                    try:
                        return await relay.upgrade(request, target_bytes)
                    except RequestError as exc:
                        # The connection's bytes already belong to the splice: it cannot
                        # carry another request, so the error answer ends it.
                        log.error("Error while proxying request: %s", exc.message)
                        response = _status(exc)
                        response.force_close()
                        return response
            return await relay.forward(request, target_bytes)
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

    if not log_requests:
        return handle

    async def handle_and_log(request: web.BaseRequest) -> web.StreamResponse:
        # An access log line per request (-v=2 and up): decided once, at assembly, so the
        # default configuration pays nothing for it. The query is left out: it may carry
        # tokens some clients put in URLs.
        response = await handle(request)
        target = request.get(_TARGET)
        log.info("%s %s %s %d%s", request.remote or "-", request.method, request.path, response.status,
                 f" ({target})" if target else "")
        return response

    return handle_and_log


def _forbidden(rule: str) -> web.Response:
    # kubectl's exact answer, plus a header saying which rule matched, so users can see why.
    safe = rule.encode("ascii", "backslashreplace").decode()[:500]
    return _text(403, "Forbidden\n", **{"X-Kproxy-Rejected-By": safe})
