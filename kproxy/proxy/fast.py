"""The fast path: plain requests like ones forwarded before, answered on callbacks.

Most traffic through a local proxy is the same few reads again and again (pollers,
dashboards, controllers' GETs). For those, the routing, filter and target verdict of
the first request is remembered (:class:`ForwardCache`); a later request with the same
method, target and Host goes out on an idle pooled connection from the HTTP server's
``data_received`` callback, and its answer is written from the upstream connection's
callback — no coroutine, no task switch.

The contract with the other layers, all of it here:

* the HTTP server calls :class:`FastPath` with each complete request when the connection
  is idle; True means taken, and the exchange hands back with
  ``Connection.fast_done()`` once the answer is written, or
  ``Connection.fast_fallback(request, resume)`` when it cannot finish — ``resume`` is what
  is left of the exchange (stream the answer, retry after a 401, raise the error for a
  Status), None to start the request over on the ordinary path;
* per client connection, :class:`ClientState` (the connection's ``attachment``) keeps the
  upstream connection in flight — aborted at once when the client goes — and the last
  head built, reused when the next request is the same;
* the upstream connection calls :class:`_FastExchange` (its listener) as bytes arrive.

Taken: GET, HEAD and OPTIONS without a body, direct or tunnelled, with the credential in
force (one due for a refresh needs awaiting: declined), when no client-address check
applies. These are replayable (Go's rule), so anything that goes wrong before the
answer's head starts over on the ordinary path, which knows retries and Status answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kproxy.credentials.sources import AuthSource
from kproxy.errors import MalformedRequest, UpstreamError
from kproxy.http import Request, Sent
from kproxy.policy.headers import is_upgrade, response_lines_raw
from kproxy.policy.request_checks import request_host
from kproxy.proxy.access import ClientGate
from kproxy.proxy.answers import guarded
from kproxy.proxy.authorization import choose_now, refreshed
from kproxy.proxy.relay import Relay, send_whole, stream_answer
from kproxy.upstream.connection import ResponseHead, UpstreamConnection
from kproxy.upstream.pool import ConnectionPool

__all__ = ["ClientState", "FastPath", "Forward", "ForwardCache"]

_FAST_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Forward:
    """The verdict for a request seen before: forward it to ``target`` (path and query
    as the API server gets them); ``described``: its proxy target, for the access log."""

    target: bytes
    described: str | None


class ForwardCache:
    """Forwarding verdicts by (method, request target, Host), bounded: clients repeat the
    same few requests, and routing, filtering and target building are pure functions of
    those three. Only verdicts to forward are kept; anything else is decided afresh."""

    __slots__ = ("_limit", "verdicts")

    def __init__(self, limit: int = 4096) -> None:
        self.verdicts: dict[tuple[str, str, str], Forward] = {}
        self._limit = limit

    def get(self, method: str, raw_path: str, host: str) -> Forward | None:
        return self.verdicts.get((method, raw_path, host))

    def remember(self, method: str, raw_path: str, host: str, forward: Forward) -> None:
        if len(self.verdicts) >= self._limit:
            self.verdicts.clear()  # clients choose targets: bounded, however many they try
        self.verdicts[(method, raw_path, host)] = forward


@dataclass(slots=True)
class HeadMemo:
    """The last head sent for a client connection, with what it was built from."""

    target: bytes
    line: bytes
    method: str
    raw_headers: list[tuple[bytes, bytes]]
    data: bytes


class ClientState:
    """What the fast path keeps about one client connection (its ``attachment``)."""

    __slots__ = ("in_flight", "memo")

    def __init__(self) -> None:
        self.in_flight: UpstreamConnection | None = None
        self.memo: HeadMemo | None = None

    def client_gone(self) -> None:
        conn, self.in_flight = self.in_flight, None
        if conn is not None:
            conn.listen(None)
            conn.abort()


@dataclass(frozen=True, slots=True)
class Refreshable:
    """The credential a fast exchange added, when a 401 to it may be refreshed."""

    auth: AuthSource
    line: bytes
    started: float


class FastPath:
    """The HTTP server's fast path (see the module docstring)."""

    def __init__(self, relay: Relay, cache: ForwardCache, gate: ClientGate) -> None:
        self._relay = relay
        self._cache = cache
        self._verdicts = cache.verdicts  # read directly: one lookup per request
        self._gate = gate

    def __call__(self, request: Request) -> bool:
        # The same checks as the pipeline's, in the same order; anything else declines.
        if self._gate.active or request.raw_path[:1] != "/":
            return False
        try:
            host = request_host(request.raw_headers, request.version)
        except MalformedRequest:
            return False
        forward = self._verdicts.get((request.method, request.raw_path, host))
        if forward is None or is_upgrade(request.raw_headers):
            return False
        return self._start(request, forward.target)

    def _start(self, request: Request, target: bytes) -> bool:
        relay = self._relay
        if relay.absolute or request.method not in _FAST_METHODS:
            return False
        auth = relay.auth
        line = relay.upstream.auth_header
        refreshable = None
        if auth is not None:
            chosen = choose_now(auth, request)
            if chosen is None:
                line = b""
            else:
                fresh, started = chosen
                if fresh is None:
                    return False
                line = fresh
                if auth.refreshes_on_401:
                    refreshable = Refreshable(auth, line, started)
        client = request.protocol
        state = client.attachment
        if not isinstance(state, ClientState):
            state = client.attachment = ClientState()
        memo = state.memo
        if (
            memo is not None
            and memo.target == target
            and memo.line == line
            and memo.method == request.method
            and memo.raw_headers == request.raw_headers
        ):
            # The same request as the last one on this connection (a poller, a dashboard):
            # the same head goes out, without building it again.
            data = memo.data
        else:
            head = relay.head(request, target, line)
            if head.has_body:
                return False
            data = head.data
            state.memo = HeadMemo(target, line, request.method, request.raw_headers, data)
        conn = relay.pool.idle_connection()
        if conn is None:
            return False
        conn.start(request.method == "HEAD")
        conn.write(data)
        conn.listen(_FastExchange(relay, request, conn, target, refreshable, state))
        state.in_flight = conn
        return True


class _FastExchange:
    """The upstream connection's listener for one fast exchange."""

    __slots__ = ("_conn", "_refreshable", "_relay", "_request", "_state", "_target")

    def __init__(
        self,
        relay: Relay,
        request: Request,
        conn: UpstreamConnection,
        target: bytes,
        refreshable: Refreshable | None,
        state: ClientState,
    ) -> None:
        self._relay = relay
        self._request = request
        self._conn = conn
        self._target = target
        self._refreshable = refreshable
        self._state = state

    def __call__(self) -> None:
        conn = self._conn
        request = self._request
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
                client.fast_fallback(request, None)
            else:
                error = conn.failure()
                client.fast_fallback(request, lambda: guarded(request, lambda: _raise(error)))
            return
        relay = self._relay
        state = self._state
        if not conn.complete:
            # A streamed answer: the task relays it; the client leaving still aborts it.
            conn.listen(None)
            client.fast_fallback(
                request, lambda: guarded(request, lambda: _finish_streaming(relay.pool, request, conn, head, state))
            )
            return
        state.in_flight = None
        refused = self._refreshable
        if head.status == 401 and refused is not None:
            body = conn.take_buffered_body()
            conn.abort()
            target = self._target
            client.fast_fallback(
                request, lambda: guarded(request, lambda: _after_401(relay, request, target, refused, head, body))
            )
            return
        send_whole(request, conn, head)
        if head.keep_alive:
            relay.pool.release(conn)
        else:
            conn.abort()
        client.fast_done()


async def _raise(error: UpstreamError) -> Sent:
    # A new exception: raising `error` would tie it to this frame, which holds it.
    raise type(error)(error.message)


async def _finish_streaming(
    pool: ConnectionPool, request: Request, conn: UpstreamConnection, head: ResponseHead, state: ClientState
) -> Sent:
    reusable = False
    try:
        reusable = await stream_answer(request, conn, head) and head.keep_alive
        return Sent(head.status)
    finally:
        state.in_flight = None
        if reusable:
            pool.release(conn)
        else:
            conn.abort()


async def _after_401(
    relay: Relay, request: Request, target: bytes, refused: Refreshable, head: ResponseHead, body: bytes
) -> Sent:
    """A fast exchange's credential was refused: refresh once and send again on the
    ordinary path, or relay the 401 as it came (as the ordinary exchange does)."""
    if await refreshed(refused.auth, refused.line, refused.started):
        return await relay.exchange(request, relay.head(request, target, refused.auth.line), None, None)
    lines, length, has_date = response_lines_raw(head.raw)
    request.protocol.send_complete(request, head.status, lines, body, length=length, has_date=has_date)
    return Sent(head.status)
