"""kproxy.server.memory: ``malloc_trim`` now and then, only after connections ended."""

from __future__ import annotations

import asyncio
import sys

import pytest

from kproxy.server.memory import MemoryTrim, _malloc_trim
from tests.waiting import until

GUARD = 5.0  # seconds; only a hang guard


async def test_trims_once_per_interval_in_which_connections_ended() -> None:
    ended = [0]
    calls: list[int] = []

    def fake_trim(pad: int) -> int:
        calls.append(pad)
        return 1

    trim = MemoryTrim(lambda: ended[0], interval=0.01, trim=fake_trim)
    trim.start()
    try:
        ticks = trim._timer
        await until(lambda: trim._timer is not ticks, "a tick", timeout=GUARD)  # a tick with nothing ended: no trim
        assert calls == []
        ended[0] = 3
        await until(lambda: calls, "a trim", timeout=GUARD)
        ticks = trim._timer
        await until(lambda: trim._timer is not ticks, "the next tick", timeout=GUARD)  # (each tick schedules the next)
        assert calls == [0] and trim.trims == 1  # nothing ended since: no second trim
        ended[0] = 4
        await until(lambda: trim.trims == 2, "a second trim", timeout=GUARD)
    finally:
        trim.stop()
    assert trim._timer is None
    trim.stop()  # twice is harmless


async def test_start_twice_keeps_one_timer_and_stop_before_start_is_harmless() -> None:
    trim = MemoryTrim(lambda: 0, interval=60, trim=lambda pad: 0)
    trim.stop()
    trim.start()
    timer = trim._timer
    trim.start()
    assert trim._timer is timer
    trim.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim (Linux)")
def test_glibc_malloc_trim_is_found_and_callable() -> None:
    trim = _malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release


async def test_glibcs_malloc_trim_is_looked_up_only_when_a_trim_is_due() -> None:
    ended = [0]
    trim = MemoryTrim(lambda: ended[0], interval=0.02)
    assert trim._trim is None  # nothing looked up at start-up
    trim.start()
    try:
        await asyncio.sleep(0.05)
        assert trim.trims == 0 and trim._trim is None  # nothing ended: no lookup, no trim
        ended[0] = 1
        await until(lambda: trim.trims, "a trim", timeout=2.0)
        assert trim.trims == 1 and trim._trim is not None  # this machine's C library is glibc
    finally:
        trim.stop()
