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
  upstream connection in flight — aborted at once when the client goes — the last
  head built and the verdict it was built for, reused when the next request is the same
  (one read again byte for byte, :mod:`kproxy.http.parsing`, skips the checks too), and,
  with ``--client-ca-file``, who the client is (:class:`~kproxy.proxy.identity.Peer`,
  judged on its first request);
* the upstream connection calls :class:`~kproxy.proxy.fast_exchange.FastExchange` (its
  listener) as bytes arrive.

Taken: GET, HEAD and OPTIONS without a body and without ``Origin`` (browsers' requests
meet the cross-origin guard), direct or tunnelled, with the credential in force (one due
for a refresh needs awaiting: declined), when no client-address check applies and the
client is not refused for its certificate (the ordinary path answers the 401). These
are replayable (Go's rule), so anything that goes wrong before the answer's head starts
over on the ordinary path, which knows retries and Status answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kproxy.http import Request
from kproxy.metrics import LongRunning, VerbStats
from kproxy.policy.audit_id import LINE_LENGTH
from kproxy.policy.request_checks import plain_host
from kproxy.proxy.access import ClientGate
from kproxy.proxy.access_log import json_string, json_text
from kproxy.proxy.authorization import choose_now
from kproxy.proxy.fast_exchange import FastExchange, Refreshable
from kproxy.proxy.identity import Identify, Peer
from kproxy.proxy.observe import Observer
from kproxy.proxy.relay import Relay
from kproxy.upstream.connection import UpstreamConnection

__all__ = ["ClientState", "FastPath", "Forward", "ForwardCache"]

_FAST_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class Forward:
    """The verdict for a request seen before: forward it to ``target`` (path and query
    as the API server gets them); ``described``: its proxy target, ``verb``: the API
    server's name for it and ``kind``: which long-running request it is if one, for the
    access log and the metrics; ``long_running``: a watch or a followed log
    (:mod:`kproxy.policy.long_running`), which the fast path leaves to the HTTP/2 lane
    when the API server speaks HTTP/2."""

    target: bytes
    described: str | None
    verb: str = "other"
    kind: LongRunning | None = None
    # The access log's fixed parts of the request's JSON line (kproxy.proxy.access_log.fixed_parts),
    # and the verb's counts in the metrics.
    log_head: str = ""
    log_tail: str = ""
    stats: VerbStats | None = None
    long_running: bool = False


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
    """The last head sent for a client connection, with what it was built from: ``stem``
    is the head without its fresh Audit-Id line when ``fresh`` (each request gets its own
    id spliced in), else the whole head (the client sent its own id)."""

    relay: Relay
    forward: Forward
    target: bytes
    line: bytes
    method: str
    raw_headers: list[tuple[bytes, bytes]]
    stem: bytes
    fresh: bool
    audit_id: bytes  # the client's own, when not fresh
    audit_json: bytes  # the same, escaped for the access log's JSON


class ClientState:
    """What kproxy keeps about one client connection (its ``attachment``): the fast path's
    upstream connection in flight and last head; who the client is (``peer``: None
    without ``--client-ca-file``); and, when requests are observed, the fast exchange
    (until it hands back) and the client and user, as the access log writes them."""

    __slots__ = (
        "durations", "exchange", "in_flight", "last", "last_sent", "last_status", "memo", "middle", "observer",
        "peer", "tail", "user", "who",
    )  # fmt: skip

    def __init__(self, observer: Observer | None = None, who: str = "", peer: Peer | None = None) -> None:
        self.in_flight: UpstreamConnection | None = None
        self.memo: HeadMemo | None = None
        self.observer = observer
        self.exchange: FastExchange | None = None  # observed and in flight
        self.who = who
        self.peer = peer
        identity = peer.identity if peer is not None else None
        self.user = json_string(identity.user if identity is not None else None)  # the JSON line's
        # The last answer's verdict, code and size, and while they repeat, the list its
        # duration waits in and the access log's middle and tail of a line (Observer._repeat).
        self.last: Forward | None = None
        self.last_status = 0
        self.last_sent = -1
        self.durations: list[float] | None = None
        self.middle = b""
        self.tail = b""

    @classmethod
    def of(cls, request: Request, identify: Identify | None, observer: Observer | None = None) -> ClientState:
        """The state of ``request``'s connection, made (and its client judged) on its first request."""
        client = request.protocol
        state = client.attachment
        if not isinstance(state, ClientState):
            peer = identify(request) if identify is not None else None
            who = observer.who(request) if observer is not None else ""
            state = client.attachment = cls(observer, who, peer)
        return state

    def client_gone(self) -> None:
        conn, self.in_flight = self.in_flight, None
        if conn is not None:
            conn.listen(None)
            conn.abort()
        exchange, self.exchange = self.exchange, None
        if exchange is not None and self.observer is not None:
            self.observer.gone(
                self.observer.adopt(exchange.request, exchange.forward, exchange.started, exchange.audit)
            )


class FastPath:
    """The HTTP server's fast path (see the module docstring)."""

    def __init__(
        self,
        relay: Relay,
        cache: ForwardCache,
        gate: ClientGate,
        observer: Observer | None = None,
        identify: Identify | None = None,
    ) -> None:
        self._relay = relay
        self._cache = cache
        self._verdicts = cache.verdicts  # read directly: one lookup per request
        self._gate = gate
        self._observer = observer
        self._identify = identify
        # Whether a client's own Authorization stands (not in impersonate mode).
        self._clients_own = identify is None or identify.mode != "impersonate"

    def use(self, relay: Relay) -> None:
        """New requests go through ``relay`` (memoised heads of the old one are not reused)."""
        self._relay = relay

    def __call__(self, request: Request) -> bool:
        # The same checks as the pipeline's, in the same order; anything else declines.
        if self._gate.active:
            return False
        state = request.protocol.attachment
        if type(state) is ClientState:
            memo = state.memo
            if memo is not None and memo.raw_headers is request.raw_headers and memo.relay is self._relay:
                # The request repeats the last one on this connection byte for byte (its
                # header list is that one's: kproxy.http.parsing): its checks passed and
                # its verdict stands, as long as the configuration (the relay) is the same.
                known = memo.forward
                if known.long_running and self._relay.h2_ready:
                    return False
                return self._start(request, known)
        if request.raw_path[:1] != "/":
            return False
        # One valid Host, no upgrade, no Origin (a browser's request meets the
        # cross-origin guard and may need a CORS grant on its answer).
        host = plain_host(request.raw_headers, request.version)
        if host is None:
            return False
        forward = self._verdicts.get((request.method, request.raw_path, host))
        if forward is None or (forward.long_running and self._relay.h2_ready):
            return False
        return self._start(request, forward)

    def _start(self, request: Request, forward: Forward) -> bool:
        """Send ``request`` on an idle connection; False to decline.

        Long because it is the fast path's one frame per request: each step split off
        into a call of its own would cost more than the step (benchmarks.instructions)."""
        target = forward.target
        relay = self._relay
        if relay.absolute or request.method not in _FAST_METHODS:
            return False
        client = request.protocol
        state = client.attachment
        if not isinstance(state, ClientState):
            state = ClientState.of(request, self._identify, self._observer)
        peer = state.peer
        impersonate = None
        if peer is not None:
            if peer.refusal:
                return False  # the ordinary path answers the 401
            impersonate = peer.impersonation
        auth = relay.auth
        line = relay.upstream.auth_header
        refreshes = None
        started = 0.0
        if auth is not None:
            chosen = choose_now(auth, request, self._clients_own)
            if chosen is None:
                line = b""
            else:
                fresh, started = chosen
                if fresh is None:
                    return False
                line = fresh
                if auth.refreshes_on_401:
                    refreshes = auth
        memo = state.memo
        if (
            memo is not None
            and memo.target == target
            and memo.line == line
            and memo.method == request.method
            and memo.raw_headers == request.raw_headers
            and memo.relay is relay
        ):
            # The same request as the last one on this connection (a poller, a dashboard):
            # the same head goes out, without building it again, but with an id of its own
            # (taken inline: a call of ours would cost more than the pop).
            if memo.fresh:
                try:
                    data = memo.stem + relay.audit_take()
                except IndexError:
                    data = memo.stem + relay.audit_ids.refill()
            else:
                data = memo.stem
        else:
            head = relay.head(request, target, line, impersonate=impersonate)
            if head.has_body:
                return False
            data = head.data
            stem = data[:-LINE_LENGTH] if head.fresh else data
            state.memo = memo = HeadMemo(
                relay,
                forward,
                target,
                line,
                request.method,
                request.raw_headers,
                stem,
                head.fresh,
                head.audit_id,
                b"" if head.fresh else json_text(head.audit_id).encode(),
            )
        conn = relay.pool.idle_connection()
        if conn is None:
            return False
        conn.start(request.method == "HEAD")
        conn.write(data)
        refreshable = Refreshable(refreshes, line, started, data) if refreshes is not None else None
        exchange = FastExchange(relay, request, conn, forward, refreshable, state)
        if self._observer is not None:
            # What the access log and the metrics need, kept as cheaply as possible: when
            # it started, and its Audit-Id (and as the JSON line writes it: a fresh one
            # needs no escaping).
            exchange.started = _monotonic()
            if memo.fresh:
                exchange.audit = exchange.audit_json = data[-40:-4]
            else:
                exchange.audit = memo.audit_id
                exchange.audit_json = memo.audit_json
            if forward.kind is not None:
                self._observer.running(forward.kind)
            state.exchange = exchange
        conn.listen(exchange)
        state.in_flight = conn
        return True
