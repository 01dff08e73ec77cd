"""Giving memory back to the operating system once connections have ended.

In: the HTTP server's count of ended client connections. Out: ``malloc_trim(0)`` now
and then, on glibc.

glibc's ``malloc`` keeps what a process frees for its own reuse, and large buffers
freed in the middle of its heap never go back on their own: after a burst of slow
clients or of churned watches (TLS state, relay buffers), RSS stayed at its peak
though nothing used it any more. ``malloc_trim(0)`` hands the free pages back. It runs
on the event loop, at most once per interval and only when connections have ended
since the last time; it costs well under a millisecond on kproxy's usual heap (tens of
MiB), about 10 ms measured on a fragmented heap of 1.5 GiB with much to give back.
Elsewhere (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL", "MemoryTrim"]

TRIM_INTERVAL = 10.0  # seconds


def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # only when a trim is due: start-up does not pay for it

    try:
        # The process's own symbols include the C library's: no find_library (which
        # runs ldconfig) is needed.
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    return trim


class MemoryTrim:
    """Calls ``malloc_trim(0)`` every :data:`TRIM_INTERVAL` seconds in which ``ended()``
    moved on."""

    def __init__(
        self,
        ended: Callable[[], int],
        interval: float = TRIM_INTERVAL,
        trim: Callable[[int], int] | None = None,
    ) -> None:
        """``trim``: what to call instead of glibc's ``malloc_trim`` (tests)."""
        self._ended = ended
        self._interval = interval
        self._trim = trim  # None: glibc's, looked up at the first trim
        self._looked_up = trim is not None
        self._seen = ended()
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    def start(self) -> None:
        if self._timer is None and (self._trim is not None or not self._looked_up):
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        ended = self._ended()
        if ended != self._seen:
            self._seen = ended
            if not self._looked_up:
                self._trim, self._looked_up = _malloc_trim(), True
            if self._trim is None:
                self._timer = None
                return  # not glibc: nothing to give back this way
            self._trim(0)
            self.trims += 1
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)
