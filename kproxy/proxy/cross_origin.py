"""The cross-origin guard, a step of the pipeline, and kproxy's own CORS answers.

In: a request that carries ``Origin`` (a browser's), its ``Host``, and the
:class:`~kproxy.policy.cross_origin.CorsPolicy`. Out: None when the request goes on —
with the CORS grant in ``request.added_lines`` when its origin is allowed, so that
whatever answers it (the API server, a static file, a ``Status``) carries the grant —
or kproxy's own answer: a preflight's grant (``204``), or a ``403`` ``Status`` saying
which origin was refused and how to allow it. Nothing is forwarded then.

The rules are :mod:`kproxy.policy.cross_origin`'s; why they are what they are is in
docs/browsers.md.
"""

from __future__ import annotations

from kproxy.errors import Forbidden
from kproxy.http import Request, Response
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.policy.cross_origin import FLAG, CorsPolicy, Kind, grant_lines, own_origin, parse_origin, refused
from kproxy.policy.headers import is_upgrade
from kproxy.proxy.answers import status_response

__all__ = ["CrossOrigin"]

_VARY = b"Vary: Origin\r\n"


class CrossOrigin:
    """The guard and the preflight answers for one policy."""

    __slots__ = ("_policy",)

    def __init__(self, policy: CorsPolicy) -> None:
        self._policy = policy

    def check(self, request: Request, origin: str, host: str) -> Response | None:
        """None to go on, or kproxy's answer (see the module docstring)."""
        policy = self._policy
        transport = request.transport
        # The request's own scheme: https when the client's connection is TLS.
        tls = transport is not None and transport.get_extra_info("sslcontext") is not None
        kind = policy.kind(origin, own_origin("https" if tls else "http", host))
        asked = request.header(b"access-control-request-method") if request.method == "OPTIONS" else None
        if asked is not None:
            return self._preflight(request, kind, origin, asked.decode("latin-1"))
        upgrade = is_upgrade(request.raw_headers)
        if refused(kind, request.method, upgrade):
            log.info("Cross-origin guard refusing %s %s from %r", request.method, request.path, origin[:200])
            tally.reject("origin")
            return status_response(Forbidden(_refusal(origin, request.method, upgrade)))
        if kind == "allowed":
            request.added_lines = grant_lines(parse_origin(origin) or origin)
        elif policy.enabled:
            request.added_lines = _VARY  # answers differ by origin once some are granted
        return None

    def _preflight(self, request: Request, kind: Kind, origin: str, method: str) -> Response:
        """A preflight (the Fetch standard's CORS-preflight request, docs/browsers.md §3)
        is kproxy's to answer, never the API server's: a grant for the own or an allowed origin asking
        for what is allowed; otherwise a 403 that grants nothing."""
        normal = parse_origin(origin)
        if kind == "foreign" or normal is None:
            reason = f"{_describe(origin)} is not allowed to use kproxy across origins{_how_to_allow(origin)}"
        else:
            headers = (request.header(b"access-control-request-headers") or b"").decode("latin-1")
            verdict = self._policy.preflight(normal, method, headers)
            if verdict.granted:
                return Response(204, headers=verdict.headers)
            reason = f"preflight from {normal}: {verdict.reason}"
        log.info("Cross-origin preflight not granted for %s: %s", request.path, reason)
        tally.reject("origin")
        response = status_response(Forbidden(reason))
        response.headers.append(("Vary", "Origin"))
        return response


def _refusal(origin: str, method: str, upgrade: bool) -> str:
    action = "open an upgraded connection (WebSocket, SPDY)" if upgrade else f"send {_shown(method)} requests"
    return (
        f"cross-origin request refused: {_describe(origin)} may not {action} through kproxy; pages from"
        f" other origins may only GET, HEAD and OPTIONS{_how_to_allow(origin)}"
    )


def _describe(origin: str) -> str:
    normal = parse_origin(origin)
    if normal is not None:
        return f"a page from {normal}"
    return f"a page with Origin {_shown(origin)}"


def _how_to_allow(origin: str) -> str:
    normal = parse_origin(origin)
    if normal is None:
        # null: sandboxed frames, file: and data: pages; anything else is not an origin.
        return "; an opaque or malformed origin cannot be allowed: serve the page from http:// or https://"
    return f"; if you trust that page, start kproxy with {FLAG}={normal}"


def _shown(text: str) -> str:
    # Client-chosen text in a message: quoted, escaped, bounded.
    return repr(text.encode("ascii", "backslashreplace").decode()[:200])
