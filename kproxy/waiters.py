"""Waking a coroutine parked on a future by a protocol callback: the one idiom the
HTTP server and the upstream pool share."""

from __future__ import annotations

import asyncio

__all__ = ["wake"]


def wake(waiter: asyncio.Future[None] | None) -> None:
    """Resolve ``waiter`` if it is still pending; a cancelled waiter is left alone."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
