"""What happened to each request, for the access log and the request metrics.

In: a request when it starts (the pipeline and the fast path make a :class:`Record`: who
asked, when, and once the request is decided, its verb, target and Audit-ID), what the
exchange learns on the way (bytes, how it ended), and its answer. Out, once per request
when it ends: a line in the access log (:mod:`kproxy.proxy.access_log`) and the counts in
:data:`kproxy.metrics.tally` (requests by verb and code, durations, long-running requests
in flight).

There is an :class:`Observer` only when metrics are served or an access log is written;
otherwise the request path pays one ``is None`` test for all of this.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Literal

from kproxy.errors import RequestError
from kproxy.http import Answer, Request, Response, Resume, Sent, StreamResponse
from kproxy.metrics import DURATION_BUCKETS, FOLD_AT, LongRunning, VerbStats, tally
from kproxy.policy.request_checks import split_target
from kproxy.policy.request_info import request_verb
from kproxy.proxy import access_log
from kproxy.proxy.access_log import AccessLog

if TYPE_CHECKING:
    from kproxy.proxy.fast import ClientState as FastState
    from kproxy.proxy.fast import Forward
    from kproxy.proxy.fast_exchange import FastExchange

__all__ = ["Observer", "Record", "Termination", "long_running", "record_of"]

Termination = Literal["complete", "client_gone", "upstream_reset", "timeout"]
_monotonic = time.monotonic
_trunc = math.trunc  # a float's int: a third of what int() costs (benchmarks.instructions)
# Durations under the histogram's first bound (5 ms), in whole microseconds, as the JSON
# line writes them (with the next member's name): most answers', for one lookup each.
# (Made by the first Observer: ~2 ms and 0.3 MB that a proxy without one does not spend.)
_QUICK = round(DURATION_BUCKETS[0] * 1_000_000)
_DURATION = access_log.MILLIS_FORMAT.encode() + b',"audit_id":"'  # whole milliseconds, then microseconds
_DURATIONS: list[bytes] = []


def long_running(verb: str, query: str | None) -> LongRunning | None:
    """Which kind of long-running request this is, if one: a watch, a log followed
    (``follow`` true, as apimachinery converts booleans), or an upgrade."""
    if verb == "watch":
        return "watch"
    if verb == "connect":
        return "upgrade"
    if verb == "get" and query and "follow=" in query:
        for pair in query.split("&"):
            key, _, value = pair.partition("=")
            if key == "follow":
                return None if value in ("0", "false", "False", "FALSE") else "follow"
    return None


class Record:
    """One request, as the access log and the metrics see it."""

    __slots__ = (
        "audit_id",
        "bytes_out",
        "client",
        "done",
        "kind",
        "request",
        "started",
        "status",
        "streamed_in",
        "target",
        "termination",
        "user",
        "verb",
    )

    def __init__(self, request: Request, client: str | None) -> None:
        self.request = request
        self.started = time.monotonic()
        self.client = client
        self.verb: str | None = None  # set once the request is decided; else worked out at the end
        self.kind: LongRunning | None = None
        self.target: str | None = None
        self.audit_id = b""
        self.user: str | None = None  # the client's identity, when kproxy knows one
        self.status: int | None = None
        self.bytes_out = 0
        self.streamed_in = 0  # the client's bytes after an upgrade
        self.termination: Termination = "complete"
        self.done = False

    def decided(self, verb: str, kind: LongRunning | None, target: str | None) -> None:
        self.verb = verb
        self.kind = kind
        self.target = target
        if kind is not None:
            tally.long_running[kind] += 1

    def path(self) -> str:
        """The path as the client sent it, without the query."""
        raw = self.request.raw_path
        if raw[:1] != "/":
            try:
                return split_target(raw)[0]
            except RequestError:
                return raw.partition("?")[0]
        return raw.partition("?")[0]

    def verb_now(self) -> str:
        if self.verb is None:
            raw, _, query = self.request.raw_path.partition("?")
            self.verb = request_verb(self.request.method, self.request.path, query or None)
        return self.verb

    def bytes_in(self) -> int:
        return self.request.body_received + self.streamed_in

    def ended_by(self, exc: RequestError) -> None:
        """An error answered the request: a deadline, or the API server's connection broke."""
        if exc.cause == "timeout":
            self.termination = "timeout"
        elif exc.cause == "reset":
            self.termination = "upstream_reset"


def _verb_stats(forward: Forward) -> VerbStats:
    """The counts of a fast verdict's verb (kept in the verdict when it was made)."""
    return forward.stats or tally.stats(forward.verb)


def record_of(request: Request) -> Record | None:
    note = request.note
    return note if type(note) is Record else None


class Observer:
    """Starts and finishes records; writes the access log and counts (see the module docstring)."""

    def __init__(self, access_log: AccessLog | None) -> None:
        self.access_log = access_log
        # The fast path writes JSON lines from parts made ahead; the text format, through Records.
        self._fast_json = access_log if access_log is not None and access_log.fd is not None else None
        self.cut_off = False  # a graceful stop's grace period is over: what is cut is a timeout
        if not _DURATIONS:
            _DURATIONS.extend(_DURATION % divmod(n, 1000) for n in range(_QUICK))

    # -- the fast path's way: no Record unless it hands back ------------------------------

    def who(self, request: Request) -> str:
        """The ``client`` member of the connection's JSON lines."""
        return access_log.who(request.remote)

    def running(self, kind: LongRunning) -> None:
        tally.long_running[kind] += 1

    def fast_done(self, state: FastState, exchange: FastExchange, status: int, sent: int) -> None:
        """A fast exchange wrote its whole answer: count it and log it.

        Written out flat, with what repeats kept from one answer to the next in the
        connection's state (see :meth:`_repeat`), and the line left in parts, as bytes,
        for the write to join: this runs for every request the fast path answers, where
        each call, format or copy costs more than the work it does
        (benchmarks.instructions)."""
        started = exchange.started
        duration = _monotonic() - started
        forward = exchange.forward
        if forward is not state.last or status != state.last_status or sent != state.last_sent:
            self._repeat(state, forward, status, sent)
        durations = state.durations
        if durations is not None:  # VerbStats.time, inline
            durations.append(duration)
            if len(durations) >= FOLD_AT:
                _verb_stats(forward).fold()
        else:
            self._long_running_done(forward, status)
        log = self._fast_json
        if log is None or not forward.log_head:
            if self.access_log is not None:  # the text format: through a Record
                record = self.adopt(exchange.request, forward, started, exchange.audit)
                record.done, record.status, record.bytes_out = True, status, sent
                self.access_log.write(record, time.time(), duration)
            return
        micros = _trunc(duration * 1e6)  # (a float constant: float times float, the quicker product)
        clock = log.clock
        if not clock.since <= started < clock.until:  # another millisecond: another start of line
            clock.stamp(started)
        pending = log.pending
        first = not pending  # the turn's first line: the write is due at the end of the turn
        # The duration from a table: cheaper than formatting a number, every request.
        pending.extend(
            (
                clock.prefix,
                state.middle,
                _DURATIONS[micros] if micros < _QUICK else _DURATION % divmod(micros, 1000),
                exchange.audit_json,
                state.tail,
            )
        )
        if first:
            log.soon()

    def _long_running_done(self, forward: Forward, status: int) -> None:
        """A long-running request ended: counted, not timed."""
        assert forward.kind is not None
        tally.long_running[forward.kind] -= 1
        _verb_stats(forward).count(status)

    def _repeat(self, state: FastState, forward: Forward, status: int, sent: int) -> None:
        """Keep in ``state`` what the connection's next answers reuse while they are like
        this one (the same verdict, code and size; a poller's are): the list its duration
        waits in (None for a long-running request, which is not timed), and the JSON line's
        middle (what precedes the duration) and tail (what follows the Audit-Id)."""
        state.last, state.last_status, state.last_sent = forward, status, sent
        stats = _verb_stats(forward)
        state.durations = stats.waiting.setdefault(status, []) if forward.kind is None else None
        if self._fast_json is not None and forward.log_head:
            state.middle = (
                f'{state.who},{forward.log_head},"status":{status},"bytes_in":0,"bytes_out":{sent},"duration_ms":'
            ).encode()
            state.tail = f'","user":{state.user},{forward.log_tail}}}\n'.encode()

    def adopt(self, request: Request, forward: Forward, started: float, audit: bytes) -> Record:
        """The Record of a fast exchange that hands back (or whose client left)."""
        record = self.start(request, request.remote)
        record.started = started
        record.audit_id = audit
        record.verb, record.kind, record.target = forward.verb, forward.kind, forward.described
        return record

    # -- the ordinary path's -------------------------------------------------------------

    def start(self, request: Request, client: str | None) -> Record:
        record = Record(request, client)
        request.note = record
        return record

    def finish(self, record: Record, status: int | None, bytes_out: int, termination: Termination) -> None:
        if record.done:
            return
        record.done = True
        record.status = status
        record.bytes_out = bytes_out
        if termination != "complete" or record.termination == "complete":
            record.termination = termination
        duration = time.monotonic() - record.started
        kind = record.kind
        if kind is not None:
            tally.long_running[kind] -= 1
        if status is not None:
            tally.request(record.verb_now(), status, None if kind is not None else duration)
        if self.access_log is not None:
            self.access_log.write(record, time.time(), duration)

    def answered(self, record: Record, answer: Answer) -> None:
        """The handler's answer (a Response or a StreamResponse already written)."""
        if isinstance(answer, Sent):
            self.finish(record, answer.status, answer.sent, "upstream_reset" if answer.cut else "complete")
        elif isinstance(answer, Response):
            sent = 0 if record.request.method == "HEAD" else len(answer.body)
            self.finish(record, answer.status, sent, "complete")
        else:
            length = dict((k.lower(), v) for k, v in answer.headers).get("content-length", "0")
            self.finish(record, answer.status, int(length) if length.isdigit() else 0, "complete")

    def gone(self, record: Record) -> None:
        """The client left (or a graceful stop cut the request) before the end."""
        self.finish(record, record.status, record.bytes_out, "timeout" if self.cut_off else "client_gone")

    async def observed(self, record: Record, run: Resume) -> Answer:
        """``run()``'s answer, finishing ``record`` with it (or as gone)."""
        try:
            answer = await run()
            if isinstance(answer, StreamResponse) and not answer.prepared:
                await answer.prepare(record.request)
                await answer.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.gone(record)
            raise
        except Exception:
            self.finish(record, 500, 0, "complete")  # a bug of ours: the connection answers 500
            raise
        self.answered(record, answer)
        return answer
