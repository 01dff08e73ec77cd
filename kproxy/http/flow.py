"""Flow control for one client connection, in both directions.

Reading: the transport stops being read while anyone *holds* it paused — a request body
that ran ahead of the upstream, a queue of pipelined requests — and resumes when the
last holder lets go. Writing: asyncio calls the protocol's ``pause_writing`` and
``resume_writing`` around its buffer's high-water mark; :meth:`WriteFlow.drain` waits in
between. uvicorn keeps the same two mechanisms in its ``flow_control.py``.
"""

from __future__ import annotations

import asyncio

from kproxy.waiters import wake

__all__ = ["ReadGate", "WriteFlow"]


class ReadGate:
    """Who holds reading paused; the transport is paused while the set is not empty."""

    __slots__ = ("_holders", "_transport", "paused")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._holders: set[int] = set()
        self.paused = False  # whether anyone holds reading paused (kept, not computed: hot path)

    def attach(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def detach(self) -> None:
        """The transport is gone: nothing to pause or resume any more."""
        self._transport = None

    def pause_for(self, holder: object) -> None:
        if not self._holders and self._transport is not None:
            self._transport.pause_reading()
        self._holders.add(id(holder))
        self.paused = True

    def resume_for(self, holder: object) -> None:
        key = id(holder)
        if key in self._holders:
            self._holders.discard(key)
            if not self._holders:
                self.paused = False
                if self._transport is not None:
                    self._transport.resume_reading()

    def forget_holders(self) -> None:
        """Holders no longer count (the stream went raw, or the connection is ending);
        the caller decides whether reading resumes."""
        self._holders.clear()
        self.paused = False


class WriteFlow:
    """The transport's write buffer: paused above its high-water mark, drained below."""

    __slots__ = ("_lost", "_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def lost(self) -> None:
        """The connection is gone: a writer waiting for the buffer goes on (and its next
        write is dropped); a later drain raises."""
        self._lost = True
        self._wake()

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("the client closed the connection")
        if self.paused:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        wake(waiter)
