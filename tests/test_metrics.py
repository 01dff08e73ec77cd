"""kproxy.metrics: the tallies behind the metrics, with fixed label sets."""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest

from kproxy.errors import BadRequest, Forbidden, MalformedRequest, RequestError, UpstreamError, UpstreamTimeout
from kproxy.metrics import DURATION_BUCKETS, FOLD_AT, REJECT_REASONS, UPSTREAM_ERRORS, Tally, VerbStats


def test_every_label_value_starts_at_zero() -> None:
    t = Tally()
    assert t.rejected == dict.fromkeys(REJECT_REASONS, 0)
    assert t.upstream_errors == dict.fromkeys(UPSTREAM_ERRORS, 0)
    assert set(t.credential_refreshes) == {
        (s, r) for s in ("exec", "oidc", "token_file", "cert_files") for r in ("success", "failure")
    }
    assert set(t.config_reloads) == {(w, r) for w in ("upstream", "authorized_ranges") for r in ("success", "failure")}
    assert t.long_running == {"watch": 0, "follow": 0, "upgrade": 0} and t.upstream_connections == 0


def test_requests_and_durations() -> None:
    t = Tally()
    t.request("get", 200, 0.001)
    t.request("get", 200, 0.005)  # a bound belongs to its bucket (le)
    t.request("get", 404, 0.03)
    t.request("list", 200, 100.0)  # above the last bound
    t.request("watch", 200, None)  # long-running: counted, not timed
    assert t.requests == {("get", 200): 2, ("get", 404): 1, ("list", 200): 1, ("watch", 200): 1}
    assert len(t.verbs["get"].buckets) == len(DURATION_BUCKETS) + 1
    assert t.verbs["get"].buckets[:3] == [2, 0, 1] and t.verbs["get"].timed == 3
    assert t.verbs["list"].buckets[-1] == 1 and t.verbs["watch"].timed == 0
    assert t.verbs["get"].total == pytest.approx(0.036)
    assert t.stats("get") is t.verbs["get"]


def _durations(kind: str, n: int, rng: random.Random) -> list[float]:
    if kind == "quick":  # under the first bound, the first bound itself
        return [rng.choice([0.0, 0.005, rng.uniform(0, 0.005)]) for _ in range(n)]
    # anywhere: exact bounds, just past them, past the last
    return [
        rng.choice([rng.choice(DURATION_BUCKETS), rng.choice(DURATION_BUCKETS) + 1e-9, rng.uniform(0, 100)])
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("kind", "n", "reads"),
    [
        ("quick", 1, 0),
        ("quick", FOLD_AT * 3 + 7, 0),
        ("quick", 1000, 5),
        ("any", 1, 0),
        ("any", 50, 0),
        ("any", FOLD_AT * 2 + 1, 3),
        ("any", 5000, 17),
    ],
)
def test_durations_folded_count_as_each_one_by_one(kind: str, n: int, reads: int) -> None:
    """Durations wait and are folded in bulk (VerbStats.fold): the counts read are those
    of counting each request as it ends (bisect_left's bucket, the sum in order), with
    reads at any point, codes mixed, and requests kept out of the histogram."""
    rng = random.Random(f"{kind}-{n}-{reads}")
    stats = VerbStats()
    codes: dict[int, int] = {}
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    total = 0.0
    read_at = set(rng.sample(range(n), reads))
    for i, seconds in enumerate(_durations(kind, n, rng)):
        code = rng.choice([200, 200, 200, 404, 500])
        codes[code] = codes.get(code, 0) + 1
        if rng.random() < 0.05:
            stats.count(code)  # long-running: counted, not timed
        else:
            stats.time(code, seconds)
            buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            total += seconds
        assert all(len(waiting) < FOLD_AT for waiting in stats.waiting.values())  # bounded
        if i in read_at:
            assert (stats.codes, stats.buckets, stats.timed) == (codes, buckets, sum(buckets))
    assert (stats.codes, stats.buckets, stats.timed) == (codes, buckets, sum(buckets))
    assert stats.total == pytest.approx(total, rel=1e-12)
    assert not any(stats.waiting.values())


@pytest.mark.parametrize(
    ("error", "cause", "refusal"),
    [
        (UpstreamError("x", "connect"), "connect", None),
        (UpstreamError("a credential could not be obtained"), None, None),
        (UpstreamTimeout("x"), "timeout", None),
        (Forbidden("client 10.0.0.1 is not in the authorized IP ranges", "ranges"), None, "ranges"),
        (Forbidden("x"), None, None),
        (BadRequest("x"), None, "bad_request"),
        (MalformedRequest("x"), None, "bad_request"),
        (RequestError("x"), None, None),
    ],
)
def test_errors_say_how_they_count(error: RequestError, cause: str | None, refusal: str | None) -> None:
    assert (error.cause, error.refusal) == (cause, refusal)
