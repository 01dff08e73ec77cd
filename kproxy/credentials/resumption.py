"""TLS session resumption and per-dial ALPN for every TLS client context kproxy makes.

In: the handshakes asyncio and uvloop start with ``SSLContext.wrap_bio`` (neither takes a
session argument), and the ALPN protocols the dialer wants for one dial
(:func:`offering`). Out: :class:`ResumingContext`, an ``ssl.SSLContext`` whose
``wrap_bio`` offers the last good session of this context (TLS 1.2 session IDs and
tickets, TLS 1.3 tickets) and the dial's ALPN list.

Why: a full RSA-2048 handshake costs the client about twice the CPU of a resumed one,
and a pool that grows under load would otherwise pay it for every new connection
(``docs/upstream-connections.md`` §3). A session belongs to the context that made it: a
rotated client certificate means a new context, hence a full handshake, as it must. A
session the server refuses (an expired ticket, a restarted server) is simply a full
handshake: OpenSSL falls back by itself.

Why a context variable for ALPN: one context serves both the HTTP/1.1 pool (ALPN
``http/1.1``) and the HTTP/2 lane (``h2``, ``http/1.1``), so that both share sessions and
a rotating certificate needs one context, not two. OpenSSL copies a context's ALPN list
into each connection when it is created (``SSL_new``), so setting it around
``wrap_bio`` affects that connection only; the handshake callbacks that call
``wrap_bio`` are scheduled from the dialing task and run in a copy of its context
variables, in asyncio and uvloop alike — uvloop runs them in the context the
*transport* was created in, so a tunnel's transport is created in the dial's context and
a forward proxy's own context ignores offers (:meth:`ResumingContext.keep_alpn`).
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["ResumingContext", "offering"]

_OFFER: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("kproxy_alpn_offer", default=None)
# The connections whose sessions may be offered next, newest last: a TLS 1.3 ticket
# arrives only after the handshake (with the first application data read), so the
# session is looked up when the next connection is made, not when this one is.
_RECENT = 4


@contextmanager
def offering(protocols: Sequence[str]) -> Iterator[None]:
    """Within the block, TLS connections this task starts offer ``protocols`` by ALPN."""
    token = _OFFER.set(tuple(protocols))
    try:
        yield
    finally:
        _OFFER.reset(token)


class ResumingContext(ssl.SSLContext):
    """A client context that resumes its last good session on every new connection."""

    def keep_alpn(self) -> None:
        """Offer this context's own ALPN list always, whatever a dial offers (a forward
        proxy is spoken to in HTTP/1.1, whatever the tunnel through it carries)."""
        self.__dict__["_fixed_alpn"] = True

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        self._alpn = tuple(alpn_protocols)
        super().set_alpn_protocols(alpn_protocols)

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if server_side:
            return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        if session is None:
            session = self.last_session()
        offer = None if self.__dict__.get("_fixed_alpn") else _OFFER.get()
        default = getattr(self, "_alpn", None)
        if offer is not None and offer != default:
            super().set_alpn_protocols(offer)
        try:
            obj = super().wrap_bio(incoming, outgoing, False, server_hostname, session)
        finally:
            if offer is not None and offer != default:
                super().set_alpn_protocols(default or ())
        recent = self.__dict__.setdefault("_recent", [])
        recent.append(obj)
        del recent[:-_RECENT]
        return obj

    def last_session(self) -> ssl.SSLSession | None:
        """The newest session a connection of this context got that is still valid."""
        now = time.time()
        for obj in reversed(self.__dict__.get("_recent", ())):
            try:
                session: ssl.SSLSession | None = obj.session
            except (ValueError, AttributeError):  # not connected yet
                continue
            if session is not None and (session.has_ticket or session.id) and session.time + session.timeout > now:
                return session
        return None
