"""kproxy.proxy.observe: records finished once, counted and logged (no sockets)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kproxy import metrics
from kproxy.errors import UpstreamError, UpstreamTimeout
from kproxy.http import Answer, Request, Response, Sent, StreamResponse
from kproxy.metrics import Tally
from kproxy.proxy import observe
from kproxy.proxy.access_log import AccessLog, fixed_parts, who
from kproxy.proxy.fast import ClientState, Forward
from kproxy.proxy.fast_exchange import FastExchange
from kproxy.proxy.observe import Observer, Record, long_running, record_of
from tests.proxy.fakes import FakeClient

GET = b"GET /api/v1/pods HTTP/1.1\r\nHost: h\r\n"


class Lines:
    """An access log of the text kind: records, not JSON lines made from parts."""

    fd = None

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, record: Record, now: float, duration: float) -> None:
        self.records.append(record)


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tally]:
    fresh = Tally()
    monkeypatch.setattr(metrics, "tally", fresh)
    monkeypatch.setattr("kproxy.proxy.observe.tally", fresh)
    yield fresh


def exchange(state: ClientState, request: Request, forward: Forward, started: float, audit: bytes) -> FastExchange:
    """A fast exchange as FastPath._start leaves it when requests are observed (its
    relay and upstream connection are not used once the answer is written)."""
    ex = FastExchange(None, request, None, forward, None, state)  # type: ignore[arg-type]
    ex.started = started
    ex.audit = ex.audit_json = audit
    return ex


def observer() -> tuple[Observer, Lines]:
    lines = Lines()
    return Observer(lines), lines  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verb", "query", "kind"),
    [
        ("watch", None, "watch"),
        ("connect", None, "upgrade"),
        ("get", "follow=true&container=c", "follow"),
        ("get", "container=c&follow=1", "follow"),
        ("get", "follow=", "follow"),
        ("get", "follow=false", None),
        ("get", "follow=0", None),
        ("get", "unfollow=true", None),
        ("list", "follow=true", None),
        ("get", None, None),
    ],
)
def test_long_running_kinds(verb: str, query: str | None, kind: str | None) -> None:
    assert long_running(verb, query) == kind


def test_a_record_is_finished_once_counted_and_logged(tally: Tally) -> None:
    obs, lines = observer()
    request = FakeClient().request(GET)
    rec = obs.start(request, "10.0.0.9")
    assert record_of(request) is rec
    rec.decided("list", None, None)
    obs.finish(rec, 200, 10, "complete")
    obs.finish(rec, 500, 0, "client_gone")  # once only
    assert lines.records == [rec] and (rec.status, rec.bytes_out, rec.termination) == (200, 10, "complete")
    assert tally.requests == {("list", 200): 1} and tally.verbs["list"].timed == 1


def test_long_running_requests_are_gauged_and_not_timed(tally: Tally) -> None:
    obs, _ = observer()
    rec = obs.start(FakeClient().request(GET), None)
    rec.decided("watch", "watch", None)
    assert tally.long_running["watch"] == 1
    obs.gone(rec)
    assert tally.long_running["watch"] == 0
    assert tally.requests == {}  # no status: the client left before one
    assert rec.termination == "client_gone"


def test_a_request_cut_at_the_end_of_a_graceful_stop_is_a_timeout(tally: Tally) -> None:
    obs, _ = observer()
    rec = obs.start(FakeClient().request(GET), None)
    rec.status = 200  # the head was out
    obs.cut_off = True
    obs.gone(rec)
    assert rec.termination == "timeout" and tally.requests == {("list", 200): 1}


@pytest.mark.parametrize(
    ("answer", "status", "sent", "termination"),
    [
        (Sent(200, 42), 200, 42, "complete"),
        (Sent(200, 7, cut=True), 200, 7, "upstream_reset"),
        (Response(404, body=b"not found\n"), 404, 10, "complete"),
        (StreamResponse(200, headers={"Content-Length": "123"}), 200, 123, "complete"),
    ],
)
def test_answers(tally: Tally, answer: Answer, status: int, sent: int, termination: str) -> None:
    obs, _ = observer()
    rec = obs.start(FakeClient().request(GET), None)
    obs.answered(rec, answer)
    assert (rec.status, rec.bytes_out, rec.termination) == (status, sent, termination)


def test_a_head_answer_sends_no_body() -> None:
    obs, _ = observer()
    rec = obs.start(FakeClient().request(GET.replace(b"GET", b"HEAD")), None)
    obs.answered(rec, Response(200, body=b"xyz"))
    assert rec.bytes_out == 0


@pytest.mark.parametrize(
    ("error", "termination"),
    [
        (UpstreamError("closed", "reset"), "upstream_reset"),
        (UpstreamTimeout("slow"), "timeout"),
        (UpstreamError("refused", "connect"), "complete"),  # the client got a whole 502
    ],
)
def test_errors_say_how_the_request_ended(error: UpstreamError, termination: str) -> None:
    obs, _ = observer()
    rec = obs.start(FakeClient().request(GET), None)
    rec.ended_by(error)
    obs.answered(rec, Response(error.status))
    assert rec.termination == termination


async def test_observed_finishes_with_the_answer_or_as_gone(tally: Tally) -> None:
    obs, lines = observer()

    async def ok() -> Answer:
        return Response(200, body=b"ok")

    rec = obs.start(FakeClient().request(GET), None)
    assert (await obs.observed(rec, ok)).status == 200 and rec.status == 200

    async def cancelled() -> Answer:
        raise asyncio.CancelledError

    rec = obs.start(FakeClient().request(GET), None)
    with pytest.raises(asyncio.CancelledError):
        await obs.observed(rec, cancelled)
    assert rec.termination == "client_gone" and rec.done

    async def broken() -> Answer:
        raise RuntimeError("a bug")

    rec = obs.start(FakeClient().request(GET), None)
    with pytest.raises(RuntimeError):
        await obs.observed(rec, broken)
    assert rec.status == 500 and len(lines.records) == 3


def test_the_verb_of_an_undecided_request_is_worked_out_from_its_path() -> None:
    rec = Record(FakeClient().request(b"DELETE /api/v1/namespaces/d/configmaps?x=1 HTTP/1.1\r\nHost: h\r\n"), None)
    assert rec.verb_now() == "deletecollection"
    rec = Record(FakeClient().request(b"GET /static/index.html HTTP/1.1\r\nHost: h\r\n"), None)
    assert rec.verb_now() == "get" and rec.path() == "/static/index.html"


def test_a_fast_exchange_is_counted_and_logged_from_parts(tmp_path: Path, tally: Tally) -> None:
    log = AccessLog.open("json", str(tmp_path / "a.log"))
    obs = Observer(log)
    request = FakeClient().request(GET)
    head, tail = fixed_parts("GET", "/api/v1/pods", "list", None)
    forward = Forward(b"/api/v1/pods", None, "list", None, head, tail)
    first = ClientState(obs, who("10.0.0.9"))
    obs.fast_done(first, exchange(first, request, forward, time.monotonic() - 0.002, b"id-1"), 200, 7)
    watch = Forward(b"/api/v1/pods?watch=1", None, "watch", "watch", *fixed_parts("GET", "/api/v1/pods", "watch", None))
    obs.running("watch")
    second = ClientState(obs, who(None))
    obs.fast_done(second, exchange(second, request, watch, time.monotonic(), b"id-2"), 200, 0)
    log.close()
    first, second = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()]
    assert list(first) == [
        "time", "client", "method", "path", "verb", "status", "bytes_in", "bytes_out", "duration_ms",
        "audit_id", "user", "target", "termination",
    ]  # fmt: skip
    assert (first["client"], first["verb"], first["status"], first["bytes_out"], first["audit_id"]) == (
        "10.0.0.9", "list", 200, 7, "id-1"
    )  # fmt: skip
    assert first["duration_ms"] >= 2 and first["termination"] == "complete" and first["user"] is None
    assert (second["client"], second["verb"]) == (None, "watch")
    assert tally.requests == {("list", 200): 1, ("watch", 200): 1}
    assert tally.verbs["watch"].timed == 0 and tally.long_running["watch"] == 0
    assert tally.verbs["list"].timed == 1


def test_a_fast_exchange_that_hands_back_gets_a_record() -> None:
    obs, _ = observer()
    request = FakeClient().request(GET)
    forward = Forward(b"/x", "service d/s:80", "proxy", None)
    rec = obs.adopt(request, forward, 12.5, b"id")
    assert record_of(request) is rec
    assert (rec.started, rec.audit_id, rec.verb, rec.target, rec.kind) == (12.5, b"id", "proxy", "service d/s:80", None)


def test_fast_lines_carry_the_millisecond_each_request_started_in(
    tmp_path: Path, tally: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines are made from a start kept per millisecond; a request that ends after a later
    one started (another millisecond's start is in use) still gets its own time, and a
    duration past a second is written whole. (The requests all end at ``now``: the
    durations do not depend on how busy the machine is.)"""
    log = AccessLog.open("json", str(tmp_path / "a.log"))
    obs = Observer(log)
    request = FakeClient().request(GET)
    forward = Forward(b"/api/v1/pods", None, "list", None, *fixed_parts("GET", "/api/v1/pods", "list", None))
    state = ClientState(obs, who("10.0.0.9"))
    now = time.monotonic()
    monkeypatch.setattr(observe, "_monotonic", lambda: now)
    starts = [now - 0.0103, now - 0.0101, now - 0.0509, now - 1.2345, now - 0.0102]
    for started in starts:
        obs.fast_done(state, exchange(state, request, forward, started, b"id"), 200, 7)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()]
    offset = log.clock.offset
    for started, line in zip(starts, lines):
        wall = started + offset
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall // 1)) + f".{int(wall % 1 * 1000):03d}Z"
        # (the offset is measured again once a second: a line may sit on either side of a
        # millisecond's edge, never further)
        assert abs(_parse_time(line["time"]) - _parse_time(expected)) <= 0.001, (line["time"], expected)
    durations = [line["duration_ms"] for line in lines]
    assert all(abs(d - e) <= 0.001 for d, e in zip(durations, [10.3, 10.1, 50.9, 1234.5, 10.2])), durations
    assert tally.verbs["list"].timed == 5


def _parse_time(text: str) -> float:
    seconds, millis = text.rstrip("Z").split(".")
    return time.mktime(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


@pytest.mark.parametrize(
    ("seconds", "written", "bucket"),
    [
        (0.0000004, 0.0, 0),
        (0.0007345, 0.734, 0),
        (0.0019996, 1.999, 0),
        (0.0047345, 4.734, 0),
        (0.0050005, 5.0, 1),
        (2.5000005, 2500.0, 12),
    ],
)
def test_a_fast_duration_is_written_in_microseconds_and_counted_in_its_bucket(
    tmp_path: Path, tally: Tally, monkeypatch: pytest.MonkeyPatch, seconds: float, written: float, bucket: int
) -> None:
    """Under the first bound (5 ms) the JSON duration comes from a table, above it it is
    formatted: the same microseconds either way, and the histogram's bucket agrees."""
    log = AccessLog.open("json", str(tmp_path / "a.log"))
    obs = Observer(log)
    state = ClientState(obs, who("10.0.0.9"))
    forward = Forward(b"/api/v1/pods", None, "list", None, *fixed_parts("GET", "/api/v1/pods", "list", None))
    forward = Forward(forward.target, None, "list", None, forward.log_head, forward.log_tail, tally.stats("list"))
    monkeypatch.setattr(observe, "_monotonic", lambda: 1000.0 + seconds)
    obs.fast_done(state, exchange(state, FakeClient().request(GET), forward, 1000.0, b"id"), 200, 7)
    log.close()
    (line,) = (tmp_path / "a.log").read_text().splitlines()
    assert json.loads(line)["duration_ms"] == written
    assert metrics.DURATION_BUCKETS[bucket] >= seconds and (
        bucket == 0 or metrics.DURATION_BUCKETS[bucket - 1] < seconds
    )
    assert tally.verbs["list"].buckets[bucket] == 1 and tally.verbs["list"].timed == 1


@pytest.mark.parametrize("logging", [True, False])
def test_what_a_connection_keeps_follows_its_answers(tmp_path: Path, tally: Tally, logging: bool) -> None:
    """One connection's answers change verdict, code and size (what it keeps while they
    repeat is made again each time): each is counted under its own verb and code, timed
    unless long-running, and logged with its own status and size; with metrics alone
    (no access log) too."""
    log = AccessLog.open("json", str(tmp_path / "a.log")) if logging else None
    obs = Observer(log)
    request = FakeClient().request(GET)
    pods = Forward(b"/api/v1/pods", None, "list", None, *fixed_parts("GET", "/api/v1/pods", "list", None))
    watch = Forward(b"/api/v1/pods?watch=1", None, "watch", "watch", *fixed_parts("GET", "/api/v1/pods", "watch", None))
    state = ClientState(obs, who("10.0.0.9"))
    answers = [(pods, 200, 7), (pods, 200, 7), (pods, 200, 9), (pods, 404, 9), (watch, 200, 0), (pods, 200, 9)]
    for forward, status, sent in answers:
        if forward.kind is not None:
            obs.running(forward.kind)
        obs.fast_done(state, exchange(state, request, forward, time.monotonic(), b"id"), status, sent)
    assert tally.requests == {("list", 200): 4, ("list", 404): 1, ("watch", 200): 1}
    assert (tally.verbs["list"].timed, tally.verbs["watch"].timed, tally.long_running["watch"]) == (5, 0, 0)
    if log is not None:
        log.close()
        lines = [json.loads(line) for line in (tmp_path / "a.log").read_text().splitlines()]
        assert [(line["verb"], line["status"], line["bytes_out"]) for line in lines] == [
            (forward.verb, status, sent) for forward, status, sent in answers
        ]
