"""Which credential a request carries upstream, and what happens after a 401.

In: the run-time credential (:class:`~kproxy.credentials.sources.AuthSource`: token
files, exec plugins, OIDC) and the client's request. Out: the ``Authorization`` line to
add — none when the client sent its own, which passes untouched (client-go: "if a user
has already set credentials, use that") and for which no plugin runs, except in
``--client-identity impersonate`` mode, where kproxy's own always goes — and, after the
API server refused it, whether a refreshed one may be tried once.

Looking a credential up costs one clock read against a cached deadline; only one past
its deadline needs an await (a plugin run, a file read, a token refresh).
"""

from __future__ import annotations

import time

from kproxy.credentials.sources import AuthSource
from kproxy.errors import RequestError
from kproxy.http import Request
from kproxy.log import log

__all__ = ["Chosen", "choose", "choose_now", "refreshed"]

# (the line chosen, when it was chosen): after a 401, the source refreshes only if no
# other request refreshed it since.
Chosen = tuple[bytes, float]


def choose_now(auth: AuthSource, request: Request, clients_own: bool = True) -> tuple[bytes | None, float] | None:
    """The line to add without awaiting (its line is None when it is due for a refresh,
    which needs awaiting), and when it was chosen; None when the client sent its own and
    ``clients_own`` (False in ``--client-identity impersonate`` mode, which drops it)."""
    if clients_own and request.header(b"authorization") is not None:
        return None
    started = time.monotonic()
    return (auth.line if started < auth.deadline else None), started


async def choose(auth: AuthSource, request: Request, clients_own: bool = True) -> Chosen | None:
    """:func:`choose_now`, refreshed when due."""
    chosen = choose_now(auth, request, clients_own)
    if chosen is None:
        return None
    line, started = chosen
    return (line if line is not None else await auth.fresh()), started


async def refreshed(auth: AuthSource, used: bytes, started: float) -> bool:
    """After a 401 to ``used``: refresh once; True if there is a new credential to retry with."""
    try:
        again = await auth.after_401(used, started)
    except RequestError as exc:
        log.error("refreshing credentials after a 401: %s", exc.message)
        return False
    if again:
        log.info("the API server answered 401: retrying once with refreshed credentials")
    return again
