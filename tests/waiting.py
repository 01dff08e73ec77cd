"""Waiting in tests: until a condition holds, with a hang guard.

In: the condition — a callable whose true result means it holds, or one that gives an
awaitable (an ``async def`` that asks a server), awaited at each check; what is awaited,
for the failure message: words, or a callable giving the state worth showing when it
never held (read then, not when the wait began); the timeout and the pause between
checks. Out: nothing once the condition holds; an ``AssertionError`` saying what never
happened, and within how long, once the timeout has passed.

The timeout is a hang guard, never a timing assertion: a passing test stays far below it,
however busy the machine.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["until"]

Condition = Callable[[], object] | Callable[[], Awaitable[object]]
What = str | Callable[[], object]


async def until(condition: Condition, what: What = "the condition", timeout: float = 10.0, step: float = 0.01) -> None:
    """Until ``condition()`` is true, checked every ``step`` seconds; ``AssertionError``
    naming ``what`` when ``timeout`` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what() if callable(what) else what}")
        await asyncio.sleep(step)
