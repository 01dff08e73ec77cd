"""kproxy.metrics: the tallies behind the metrics, with fixed label sets."""

from __future__ import annotations

import pytest

from kproxy.errors import BadRequest, Forbidden, MalformedRequest, RequestError, UpstreamError, UpstreamTimeout
from kproxy.metrics import DURATION_BUCKETS, REJECT_REASONS, UPSTREAM_ERRORS, Tally


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
