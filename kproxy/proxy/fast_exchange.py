"""The upstream connection's listener for one fast exchange (:mod:`kproxy.proxy.fast`).

In: the upstream connection's callbacks, once the answer's head is in, on an error and
at the end. Out: the whole answer written to the client and the connection back to the
pool (``Connection.fast_done()``), or what is left of the exchange handed to the client
connection's task (``Connection.fast_fallback(request, resume)``): a streamed answer to
relay, a 401 to a refreshable credential to retry once, an error to answer as a Status,
or nothing (None: the request starts over on the ordinary path, as Go retries a
replayable request on a connection the server closed as it was reused).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kproxy.credentials.sources import AuthSource
from kproxy.errors import UpstreamError
from kproxy.http import Answer, Request, Resume, Sent
from kproxy.policy.headers import response_lines_raw
from kproxy.proxy.answers import guarded
from kproxy.proxy.authorization import refreshed
from kproxy.proxy.relay import Relay, send_whole, stream_answer
from kproxy.upstream.connection import ResponseHead, UpstreamConnection
from kproxy.upstream.pool import ConnectionPool

if TYPE_CHECKING:
    from kproxy.proxy.fast import ClientState, Forward

__all__ = ["FastExchange", "Refreshable"]


@dataclass(frozen=True, slots=True)
class Refreshable:
    """The credential a fast exchange added, when a 401 to it may be refreshed."""

    auth: AuthSource
    line: bytes
    started: float
    data: bytes  # the head sent (a retry keeps its Audit-Id)


class FastExchange:
    """The upstream connection's listener for one fast exchange."""

    __slots__ = ("_conn", "_refreshable", "_relay", "_state", "audit", "audit_json", "forward", "request", "started")
    # Set by FastPath._start only when requests are observed (a state with an observer):
    # when it started, its Audit-Id, and the same as the access log's JSON writes it.
    started: float
    audit: bytes
    audit_json: bytes

    def __init__(
        self,
        relay: Relay,
        request: Request,
        conn: UpstreamConnection,
        forward: Forward,
        refreshable: Refreshable | None,
        state: ClientState,
    ) -> None:
        self._relay = relay
        self.request = request
        self._conn = conn
        self.forward = forward
        self._refreshable = refreshable
        self._state = state

    def _hand_back(self, resume: Resume | None) -> None:
        """``fast_fallback``; what finishes the exchange now owns its record."""
        state = self._state
        observer = state.observer
        if observer is not None:
            state.exchange = None
            record = observer.adopt(self.request, self.forward, self.started, self.audit)
            if resume is not None:
                inner = resume

                def resume() -> Awaitable[Answer]:
                    return observer.observed(record, inner)

        self.request.protocol.fast_fallback(self.request, resume)

    def __call__(self) -> None:
        conn = self._conn
        request = self.request
        client = request.protocol
        head = conn.head
        if head is None:
            if conn.error is None and not conn.closed:
                return  # the head is not complete yet
            self._state.in_flight = None  # (the connection forgot this listener already)
            conn.abort()
            if conn.reused and not conn.got_bytes:
                # The server closed the idle connection as we reused it: the request is
                # replayable, so it starts over on the ordinary path (Go's retry).
                self._hand_back(None)
            else:
                error = conn.failure()
                self._hand_back(lambda: guarded(request, lambda: _raise(error)))
            return
        relay = self._relay
        state = self._state
        if not conn.complete:
            # A streamed answer: the task relays it; the client leaving still aborts it.
            conn.listen(None)
            self._hand_back(lambda: guarded(request, lambda: _finish_streaming(relay.pool, request, conn, head, state)))
            return
        state.in_flight = None
        refused = self._refreshable
        if head.status == 401 and refused is not None:
            body = conn.take_buffered_body()
            conn.abort()
            target = self.forward.target
            self._hand_back(
                lambda: guarded(request, lambda: _after_401(relay, request, target, refused, head, body, state))
            )
            return
        sent = send_whole(request, conn, head)
        if head.keep_alive:
            relay.pool.release(conn)
        else:
            conn.abort()
        observer = state.observer
        if observer is not None:
            state.exchange = None
            observer.fast_done(state, self, head.status, sent)
        client.fast_done()


async def _raise(error: UpstreamError) -> Sent:
    # A new exception: raising `error` would tie it to this frame, which holds it.
    raise type(error)(error.message)


async def _finish_streaming(
    pool: ConnectionPool, request: Request, conn: UpstreamConnection, head: ResponseHead, state: ClientState
) -> Sent:
    reusable = False
    try:
        sent = await stream_answer(request, conn, head)
        reusable = sent is not None and head.keep_alive
        return Sent(head.status, sent or 0, sent is None)
    finally:
        state.in_flight = None
        if reusable:
            pool.release(conn)
        else:
            conn.abort()


async def _after_401(
    relay: Relay,
    request: Request,
    target: bytes,
    refused: Refreshable,
    head: ResponseHead,
    body: bytes,
    state: ClientState,
) -> Sent:
    """A fast exchange's credential was refused: refresh once and send again on the
    ordinary path, or relay the 401 as it came (as the ordinary exchange does)."""
    if await refreshed(refused.auth, refused.line, refused.started):
        peer = state.peer
        impersonate = peer.impersonation if peer is not None else None
        again = relay.head(request, target, refused.auth.line, impersonate=impersonate, again=refused.data)
        return await relay.exchange(request, again, None, None)
    lines, length, has_date = response_lines_raw(head.raw)
    request.protocol.send_complete(request, head.status, lines, body, length=length, has_date=has_date)
    return Sent(head.status, 0 if request.method == "HEAD" else len(body))
