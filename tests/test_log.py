"""kproxy.log: one line per cause per interval, and the count of what was held back."""

from __future__ import annotations

import logging
import time

import pytest

from kproxy.log import log_throttled


def test_one_line_per_cause_per_interval(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the clock kproxy.log reads
    with caplog.at_level(logging.WARNING, logger="kproxy"):
        assert log_throttled("a", logging.WARNING, "cause a: %s", 1)
        assert not log_throttled("a", logging.WARNING, "cause a: %s", 2)
        assert not log_throttled("a", logging.WARNING, "cause a: %s", 3)
        assert log_throttled("b", logging.WARNING, "cause b")  # another cause has its own interval
        now[0] += 4.9
        assert not log_throttled("a", logging.WARNING, "cause a: %s", 4)
        now[0] += 0.2
        assert log_throttled("a", logging.WARNING, "cause a: %s", 5)
        now[0] += 60
        assert log_throttled("a", logging.WARNING, "cause a: %s", 6)
    assert caplog.messages == [
        "cause a: 1",
        "cause b",
        "cause a: 5 (3 more like this not logged)",
        "cause a: 6",
    ]
