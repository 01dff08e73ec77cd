"""kproxy.cli.run.raise_open_files_limit: Go's start-up rule for RLIMIT_NOFILE."""

from __future__ import annotations

import resource

import pytest

from kproxy.cli.run import raise_open_files_limit

INF = resource.RLIM_INFINITY


class Limits:
    def __init__(self, soft: int, hard: int, ceiling: int = 1 << 20) -> None:
        self.soft, self.hard, self.ceiling = soft, hard, ceiling
        self.calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.calls.append(limits)
        soft, hard = limits
        if soft == INF or soft > self.ceiling or (hard != INF and soft > hard):
            raise ValueError("not allowed")  # Linux: no more than fs.nr_open
        self.soft = soft


@pytest.mark.parametrize(
    ("soft", "hard", "after"),
    [
        (1024, 524288, 524288),  # a systemd default: the whole hard limit
        (256, 4096, 4096),
        (4096, 4096, 4096),  # nothing to do
        (1024, INF, 1 << 20),  # infinity is refused: fs.nr_open's default instead
        ((1 << 20) + 5, INF, (1 << 20) + 5),  # never lowered
    ],
)
def test_the_soft_limit_goes_up_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, after: int
) -> None:
    limits = Limits(soft, hard)
    monkeypatch.setattr(resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", limits.setrlimit)
    assert raise_open_files_limit() == (soft, after)
    assert limits.soft == after


def test_a_limit_that_cannot_be_raised_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(1024, 4096, ceiling=2048)
    monkeypatch.setattr(resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", limits.setrlimit)
    assert raise_open_files_limit() == (1024, 1024)
    assert limits.calls == [(4096, 4096)]
