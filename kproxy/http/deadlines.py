"""How long a client may keep a connection without a request in progress.

Two deadlines, as Go's ``http.Server`` has them (kproxy's defaults are its flags'):

* **read header**: a request head must be complete within it, counted from the
  connection's start for the first request and from the first byte of each later one.
  It is a deadline for the whole head: a client trickling one header line a second
  does not extend it. When it passes, a client that sent part of a head gets
  ``408 Request Timeout``; a connection that sent nothing is just closed.
* **idle**: a keep-alive connection with no request in progress is closed after it.

Neither touches a request in progress — its body arriving, its answer being written,
a watch, ``logs -f``, an upgraded exec or port-forward session: they run for hours.
``0`` disables a deadline.

In: the connection, which says what it waits for (:meth:`Watched.awaited`), and is told
when a deadline passes (:meth:`Watched.deadline_passed`). Out: a timer per connection,
owned by it. No per-request work: the timer looks every ``period`` seconds (an eighth
of the shorter deadline) and compares what the connection waits for with what it
waited for before; a wait first seen at one look is counted from that look, so a
deadline ends up to a period late, never early.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Deadlines", "Watched", "period"]

Awaited = tuple[bool, object]  # (a head, not the next request; what marks this wait)


class Watched(Protocol):
    def awaited(self) -> Awaited | None:
        """(True, marker) while a request head is awaited, (False, marker) between
        requests, None while a request is in progress; the marker stays the same object
        for as long as the same thing is awaited."""

    def deadline_passed(self, head: bool) -> None:
        """The read-header deadline (``head``) or the idle one passed: end it."""


def period(read_header: float, idle: float) -> float:
    """How often a connection's deadlines are looked at; 0 when both are off."""
    shortest = min((t for t in (read_header, idle) if t > 0), default=0.0)
    return max(shortest / 8, 0.01) if shortest else 0.0


class Deadlines:
    """The deadline timer of one connection."""

    __slots__ = ("_conn", "_idle", "_loop", "_period", "_read_header", "_since", "_timer", "_waiting")

    def __init__(self, conn: Watched, loop: asyncio.AbstractEventLoop, read_header: float, idle: float) -> None:
        self._conn = conn
        self._loop = loop
        self._read_header = read_header
        self._idle = idle
        self._period = period(read_header, idle)
        self._waiting: Awaited | None = None
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """From the connection's start: its first request head is awaited from now."""
        if self._period:
            self._waiting = self._conn.awaited()
            self._since = self._loop.time()
            self._timer = self._loop.call_later(self._period, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _look(self) -> None:
        self._timer = None
        now = self._loop.time()
        waiting = self._conn.awaited()
        if waiting is None:
            self._waiting = None  # a request in progress: no deadline runs
        elif self._waiting is None or waiting[0] != self._waiting[0] or waiting[1] is not self._waiting[1]:
            self._waiting, self._since = waiting, now  # another wait: counted from this look
        else:
            limit = self._read_header if waiting[0] else self._idle
            if limit > 0 and now - self._since >= limit:
                self._conn.deadline_passed(waiting[0])
                return
        self._timer = self._loop.call_later(self._period, self._look)
