"""kproxy.http.deadlines with a hand-driven clock: which waits count, from when, and what
never does (a request in progress)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kproxy.http.deadlines import Deadlines, period


class Clock:
    """The loop as Deadlines uses it: time() and call_later(), run by the test."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Clock.Handle:
        handle = Clock.Handle(self, (self.now + delay, callback))
        self.timers.append(handle.entry)
        return handle

    class Handle:
        def __init__(self, clock: Clock, entry: tuple[float, Callable[[], None]]) -> None:
            self.clock, self.entry = clock, entry

        def cancel(self) -> None:
            if self.entry in self.clock.timers:
                self.clock.timers.remove(self.entry)

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.timers and min(t for t, _ in self.timers) <= end:
            entry = min(self.timers, key=lambda e: e[0])
            self.timers.remove(entry)
            self.now = entry[0]
            entry[1]()
        self.now = end


class Conn:
    def __init__(self) -> None:
        self.waiting: tuple[bool, object] | None = (True, None)
        self.passed: list[tuple[float, bool]] = []
        self.clock: Clock | None = None

    def awaited(self) -> tuple[bool, object] | None:
        return self.waiting

    def deadline_passed(self, head: bool) -> None:
        assert self.clock is not None
        self.passed.append((self.clock.now, head))


def started(read_header: float = 8.0, idle: float = 16.0) -> tuple[Clock, Conn, Deadlines]:
    clock, conn = Clock(), Conn()
    conn.clock = clock
    deadlines = Deadlines(conn, clock, read_header, idle)  # type: ignore[arg-type]
    deadlines.start()
    return clock, conn, deadlines


def test_period() -> None:
    assert period(60, 300) == 7.5
    assert period(0, 300) == 37.5
    assert period(0, 0) == 0.0
    assert period(0.01, 0) == 0.01  # not below 10 ms


def test_the_first_head_counts_from_the_start_and_a_trickle_does_not_extend_it() -> None:
    clock, conn, _ = started()
    clock.advance(3)
    conn.waiting = (True, None)  # bytes came, the first head is still incomplete: the same wait
    clock.advance(4.9)
    assert conn.passed == []
    clock.advance(0.2)
    assert conn.passed == [(8.0, True)]  # exact: the first wait's start is known
    assert clock.timers == []  # done: the connection ends now


def test_a_later_head_counts_from_when_it_was_first_seen_never_earlier() -> None:
    clock, conn, _ = started()
    conn.waiting = None  # the first request is being answered
    clock.advance(20)
    head = object()
    conn.waiting = (True, head)  # the next request's head began (seen at the next look)
    clock.advance(8)
    assert conn.passed == []
    clock.advance(1)
    [(when, was_head)] = conn.passed
    assert was_head and 28 <= when <= 29  # at most a period (1 s) late


def test_a_request_in_progress_is_never_cut() -> None:
    clock, conn, _ = started()
    conn.waiting = None  # a watch, an exec session, a slow download...
    clock.advance(3600)
    assert conn.passed == []


def test_idle_between_requests() -> None:
    clock, conn, _ = started()
    conn.waiting = (False, object())
    clock.advance(16.5)
    assert conn.passed == []  # first seen at 1 s: counted from there
    clock.advance(1)
    [(when, was_head)] = conn.passed
    assert not was_head and 17 <= when <= 18


def test_each_new_request_starts_the_count_again() -> None:
    clock, conn, _ = started()
    for _ in range(10):
        conn.waiting = (False, object())  # answered, idle again: another marker each time
        clock.advance(10)
    assert conn.passed == []


@pytest.mark.parametrize(("read_header", "idle", "head"), [(0.0, 4.0, True), (4.0, 0.0, False)])
def test_zero_turns_a_deadline_off(read_header: float, idle: float, head: bool) -> None:
    clock, conn, _ = started(read_header, idle)
    conn.waiting = (head, object())
    clock.advance(1000)
    assert conn.passed == []


def test_stop() -> None:
    clock, conn, deadlines = started()
    deadlines.stop()
    clock.advance(100)
    assert conn.passed == [] and clock.timers == []
