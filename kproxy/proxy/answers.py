"""The answers kproxy gives itself, in one place: Kubernetes ``Status`` objects for its
errors, kubectl's filter refusal, and Go's server's own plain-text 400s.

In: a :class:`~kproxy.errors.RequestError` (or a rule name). Out: a
:class:`~kproxy.http.Response`. Both the pipeline and the fast path's hand-backs answer
errors through :func:`error_answer`, so an error reads the same whichever path met it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kproxy.errors import BadRequest, Forbidden, MalformedRequest, RequestError, Unauthorized
from kproxy.http import TEXT_PLAIN, Answer, Request, Response, http_error
from kproxy.log import log, log_throttled
from kproxy.metrics import tally

__all__ = ["error_answer", "forbidden", "guarded", "internal_error", "status_response"]


def status_response(exc: RequestError) -> Response:
    """A Kubernetes ``Status`` answer for an error kproxy reports itself."""
    return Response(status=exc.status, body=exc.body(), headers={"Content-Type": "application/json"})


def forbidden(rule: str) -> Response:
    """kubectl's exact filter answer, plus a header naming the rule, so users can see why."""
    tally.reject("filter")
    safe = rule.encode("ascii", "backslashreplace").decode()[:500]
    return http_error(403, "Forbidden", {"X-Kproxy-Rejected-By": safe})


def error_answer(exc: RequestError) -> Response:
    """Go's server's own 400 for what it refuses before any handler (plain text, no
    newline, ``Connection: close``, net/http server.go); a ``Status`` for the rest, with a
    log line for errors that are not the client's. Each is counted: refusals by why,
    upstream errors by kind."""
    if exc.refusal is not None:
        tally.reject(exc.refusal)
    if exc.cause is not None:
        tally.upstream_error(exc.cause)
    if isinstance(exc, MalformedRequest):
        response = Response(
            status=400, body=f"400 Bad Request: {exc.message}".encode(), headers={"Content-Type": TEXT_PLAIN}
        )
        response.force_close()
        return response
    if not isinstance(exc, Forbidden | BadRequest | Unauthorized):  # the client's doing: not kproxy's error
        # kubectl's line, once per cause per interval: an unreachable API server or a
        # process out of descriptors must not write a line per failed request.
        log_throttled("proxying:" + exc.message, logging.ERROR, "Error while proxying request: %s", exc.message)
    return status_response(exc)


def internal_error(request: Request) -> Response:
    """A bug of ours (called from an ``except``): say so plainly in the log, with the
    traceback, and to the client, and keep serving."""
    log.exception("internal error serving %s %s", request.method, request.path)
    return status_response(RequestError("kproxy internal error; see its log"))


async def guarded(request: Request, run: Callable[[], Awaitable[Answer]]) -> Answer:
    """``run()``'s answer, or the error answer kproxy gives when it raises."""
    try:
        return await run()
    except RequestError as exc:
        return error_answer(exc)
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client went away: nothing to answer
    except Exception:
        return internal_error(request)
