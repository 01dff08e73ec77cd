"""Idle keep-alive connections to the API server, and new ones from the dialer.

In: the :class:`~kproxy.upstream.dialer.Dialer` (the one route to the API server: direct
or through the forward proxy chosen at start-up). Out: connections for exchanges —
an idle one without awaiting (the fast path's way), or a new one — and back again when
an exchange ends with the connection reusable.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time

from kproxy.upstream.connection import UpstreamConnection
from kproxy.upstream.dialer import Dialer

__all__ = ["IDLE_TIMEOUT", "MAX_IDLE", "ConnectionPool"]

# Go's http.Transport IdleConnTimeout; client-go keeps the default.
IDLE_TIMEOUT = 90.0
MAX_IDLE = 256
# Dials under way at once while dialling is quick (a near API server: the handshake is
# CPU, shared with the requests being served), none more: docs/upstream-connections.md §4.
NEAR_DIALS = 4
NEAR_DIAL_SECONDS = 0.02


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
        # Requests waiting for a connection: each takes whichever comes first, one
        # released by another request or the one dialled for it (see acquire()).
        self._wanting: collections.deque[asyncio.Future[UpstreamConnection]] = collections.deque()
        self._dialing = 0  # dials under way for them
        self._connected = False  # a dial succeeded once (its TLS session can be resumed)
        self._dial_seconds = 0.0  # how long the last successful dial took
        self._warming: asyncio.Task[UpstreamConnection] | None = None  # warm_up()'s dial

    @property
    def dialer(self) -> Dialer:
        """The one route this pool's connections take (the server wires its descriptor
        shortage callback there)."""
        return self._dialer

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

    async def acquire(self) -> UpstreamConnection:
        """An idle connection, else whichever comes first: one released by another
        request, or a newly dialled one; a dial that finds nobody waiting goes idle.

        Go's transport does the same (``queueForIdleConn`` and ``queueForDial``): when a
        burst of requests outgrows the pool, the connections that free up in the
        meantime serve it, instead of a full TLS handshake for every request. Dials are
        not tied to requests: there are never more under way than requests waiting; the
        very first one goes alone, so that the others resume its TLS session; and while
        dials are quick (a near server), at most :data:`NEAR_DIALS` are under way
        (``docs/upstream-connections.md`` §3, §4).
        """
        conn = self.idle_connection()
        if conn is not None:
            return conn
        loop = asyncio.get_running_loop()
        want: asyncio.Future[UpstreamConnection] = loop.create_future()
        self._wanting.append(want)
        self._dial_for_waiters()
        try:
            return await want
        except asyncio.CancelledError:
            if want.done() and not want.cancelled() and want.exception() is None:
                self.release(want.result())  # handed over just as the request went
            raise
        finally:
            if not want.done():
                want.cancel()
            try:
                self._wanting.remove(want)
            except ValueError:
                pass

    def warm_up(self) -> None:
        """Dial one connection now, ahead of the first request, which then finds it idle
        or waits for it as for its own dial (``docs/startup.md`` §4): the dial and TLS
        handshake overlap the client's own start. It is scheduled, never awaited, so it
        cannot delay start-up; it runs no exec plugin (a dial never does); a failure is
        silent, and is the error of whichever request was waiting for it, as its own dial
        would have been; :meth:`close` cancels it. A pool that has a connection or a dial
        for waiting requests already is left as it is."""
        if self._closed or self._idle or self._dialing:
            return
        self._dialing += 1
        self._warming = asyncio.get_running_loop().create_task(self.connect())
        self._warming.add_done_callback(functools.partial(self._dialled, time.monotonic()))

    def _dial_for_waiters(self) -> None:
        waiting = sum(1 for want in self._wanting if not want.done())
        if not self._connected:
            limit = min(waiting, 1)
        elif self._dial_seconds < NEAR_DIAL_SECONDS:
            # A near server: a handshake costs CPU that the requests being served need,
            # and a released connection comes sooner than a new one; a burst of dials
            # would be the burst's worst latency.
            limit = min(waiting, NEAR_DIALS)
        else:
            limit = waiting  # a far one: a dial is mostly waiting, and done in parallel
        loop = asyncio.get_running_loop()
        while self._dialing < limit and not self._closed:
            self._dialing += 1
            dial = loop.create_task(self.connect())
            dial.add_done_callback(functools.partial(self._dialled, time.monotonic()))

    def _dialled(self, began: float, dial: asyncio.Task[UpstreamConnection]) -> None:
        self._dialing -= 1
        if dial is self._warming:
            self._warming = None
        if dial.cancelled():
            return
        error = dial.exception()
        if error is None:
            self._connected = True
            now = time.monotonic()
            self._dial_seconds = now - began
            conn = dial.result()
            if self._tls is not None:
                self._check_tls(now)
            if conn.generation == self._generation:
                self._hand_over(conn)
            else:  # made with a certificate replaced meanwhile (an exec plugin's first, say)
                conn.close()  # every request after a rotation goes out with the new one
        elif not self._connected:
            # Nothing ever got through: everyone waiting was counting on this dial.
            for want in self._wanting:
                if not want.done():
                    want.set_exception(error)
        else:
            for want in self._wanting:  # the request longest waiting sees it, as the one it was for
                if not want.done():
                    want.set_exception(error)
                    break
        self._dial_for_waiters()

    def _hand_over(self, conn: UpstreamConnection) -> None:
        """A new connection: to the request longest waiting, else idle."""
        for want in self._wanting:
            if not want.done():
                want.set_result(conn)
                return
        self.release(conn)

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
        """Back to the pool after an exchange that left the connection reusable (to a
        request waiting for one first)."""
        if self._closed or conn.closed or len(self._idle) >= MAX_IDLE or conn.generation != self._generation:
            conn.close()
            return
        wanting = self._wanting
        while wanting:
            want = wanting.popleft()
            if not want.done():
                conn.reused = True
                want.set_result(conn)
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
        if self._warming is not None:
            self._warming.cancel()  # a stop never waits for a handshake nobody asked for
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self._idle:
            # Closed at once, as Go's CloseIdleConnections closes them: a TLS transport's
            # close() would wait for the server's close_notify (asyncio: up to 30 s),
            # holding the socket past the end of the process's or embedder's loop.
            conn.abort()
        self._idle.clear()
