"""Idle keep-alive connections to the API server, and new ones from the dialer.

In: the :class:`~kproxy.upstream.dialer.Dialer` (the one route to the API server: direct
or through the forward proxy chosen at start-up). Out: connections for exchanges —
an idle one without awaiting (the fast path's way), or a new one — and back again when
an exchange ends with the connection reusable.
"""

from __future__ import annotations

import asyncio
import time

from kproxy.upstream.connection import UpstreamConnection
from kproxy.upstream.dialer import Dialer

__all__ = ["IDLE_TIMEOUT", "MAX_IDLE", "ConnectionPool"]

# Go's http.Transport IdleConnTimeout; client-go keeps the default.
IDLE_TIMEOUT = 90.0
MAX_IDLE = 256


class ConnectionPool:
    """Idle keep-alive connections to the API server, most recently used first.

    A pool holds connections of one route only: the dialer's, direct or through the one
    forward proxy chosen at start-up (the API server URL is fixed, so is its proxy).
    A pool per route is the key Go's transport uses (``connectMethodKey``: proxy, scheme,
    address). Upgrades never come from or go back to the pool.

    With a rotating client certificate (``dialer.tls``), connections carry the
    generation they were made with: when it moves on, idle ones are closed and busy
    ones are not reused, so every request after a rotation goes out with the new one.
    """

    def __init__(self, dialer: Dialer) -> None:
        self._dialer = dialer
        self._tls = dialer.tls
        self._generation = self._tls.generation if self._tls is not None else 0
        self._idle: list[UpstreamConnection] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def idle_connection(self) -> UpstreamConnection | None:
        """A pooled connection ready for a request, if one is; no await on the hot path."""
        idle = self._idle
        now = time.monotonic()
        if self._tls is not None:
            self._check_tls(now)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT:
                conn.reused = True
                return conn
            conn.close()
        return None

    async def connect(self, *, tunnel: bool = False) -> UpstreamConnection:
        """A new connection, never pooled yet; ``tunnel`` for upgrades (see the dialer)."""
        _, conn, generation = await self._dialer.connect(UpstreamConnection, tunnel=tunnel)
        conn.generation = generation
        if self._tls is not None:
            self._check_tls(time.monotonic())  # the dial may have found a new certificate
        return conn

    def _check_tls(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        if now >= tls.check_at:
            tls.check(now)
        if tls.generation != self._generation:
            self._generation = tls.generation
            for conn in self._idle:
                conn.close()
            self._idle.clear()

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after an exchange that left the connection reusable."""
        if self._closed or conn.closed or len(self._idle) >= MAX_IDLE or conn.generation != self._generation:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 3, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = time.monotonic() - IDLE_TIMEOUT
        keep = []
        for conn in self._idle:
            if conn.closed or conn.idle_since < cutoff:
                conn.close()
            else:
                keep.append(conn)
        self._idle = keep
        if keep and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_TIMEOUT / 3, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self._idle:
            conn.close()
        self._idle.clear()
