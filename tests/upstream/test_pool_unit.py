"""ConnectionPool without sockets: a scripted dialer, a fake clock and recorded timers.

The pool's policy (which idle connection is handed out, when one expires, when one is
closed instead of kept) is checked here in isolation; ``test_pool.py`` checks the same
client end to end against a scripted server.
"""

from __future__ import annotations

import asyncio
import gc
import math
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from kproxy.config.upstream import Upstream
from kproxy.errors import UpstreamError
from kproxy.upstream import pool as pool_module
from kproxy.upstream.connection import UpstreamConnection
from kproxy.upstream.dialer import Dialer
from kproxy.upstream.pool import IDLE_TIMEOUT, MAX_IDLE, NEAR_DIAL_SECONDS, NEAR_DIALS, ConnectionPool
from tests.upstream.doubles import FakeTLS, MockTransport, upstream

P = TypeVar("P", bound=asyncio.BaseProtocol)


class ScriptedDialer(Dialer):
    """The real Dialer.connect (generation, keep-alive options) over a socket-free _open."""

    def __init__(self, up: Upstream) -> None:
        super().__init__(up)
        self.dials: list[tuple[ssl.SSLContext | None, bool]] = []

    async def _open(
        self, protocol_factory: Callable[[], P], ssl_context: ssl.SSLContext | None, tunnel: bool
    ) -> tuple[asyncio.Transport, P]:
        self.dials.append((ssl_context, tunnel))
        protocol = protocol_factory()
        transport = MockTransport()
        protocol.connection_made(transport)
        return transport, protocol


class Clock:
    """Stands for the pool module's ``time``: only ``monotonic`` is read."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Timer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Replaces the loop's ``call_later``: the sweeper runs when a test says so."""

    def __init__(self) -> None:
        self.scheduled: list[Timer] = []

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        timer = Timer(delay, lambda: callback(*args))
        self.scheduled.append(timer)
        return timer

    @property
    def pending(self) -> list[Timer]:
        return [t for t in self.scheduled if not t.cancelled]

    def fire(self) -> None:
        (timer,) = self.pending
        timer.cancelled = True  # a TimerHandle runs once
        timer.callback()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pool_module, "time", fake)
    return fake


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> Timers:
    fake = Timers()
    monkeypatch.setattr(asyncio.get_running_loop(), "call_later", fake.call_later)
    return fake


def transport_of(conn: UpstreamConnection) -> MockTransport:
    assert isinstance(conn.transport, MockTransport)
    return conn.transport


async def test_new_connections_are_dialled_and_not_reused(clock: Clock, timers: Timers) -> None:
    dialer = ScriptedDialer(upstream())
    pool = ConnectionPool(dialer)
    assert pool.idle_connection() is None
    conn = await pool.connect()
    upgrade = await pool.connect(tunnel=True)
    assert dialer.dials == [(None, False), (None, True)]
    assert not conn.reused and not upgrade.reused and conn.generation == 0


async def test_most_recently_used_first(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    a, b, c = [await pool.connect() for _ in range(3)]
    for conn in (a, b, c):
        pool.release(conn)
        clock.now += 1
    assert [pool.idle_connection() for _ in range(4)] == [c, b, a, None]
    assert a.reused and b.reused and c.reused
    assert not any(transport_of(conn).closed for conn in (a, b, c))


@pytest.mark.parametrize(
    ("idle_for", "handed_out"),
    [(0.0, True), (IDLE_TIMEOUT - 0.001, True), (IDLE_TIMEOUT, False), (IDLE_TIMEOUT + 3600, False)],
)
async def test_idle_expiry(clock: Clock, timers: Timers, idle_for: float, handed_out: bool) -> None:
    # Go's IdleConnTimeout (90s): an older connection may have been dropped by the server.
    pool = ConnectionPool(ScriptedDialer(upstream()))
    conn = await pool.connect()
    pool.release(conn)
    clock.now += idle_for
    assert (pool.idle_connection() is conn) is handed_out
    assert transport_of(conn).closed is not handed_out


async def test_expired_connections_are_all_closed_on_the_way(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    older, newer = await pool.connect(), await pool.connect()
    pool.release(older)
    clock.now += IDLE_TIMEOUT / 2
    pool.release(newer)
    clock.now += IDLE_TIMEOUT / 2 + 1  # older expired, newer not yet
    assert pool.idle_connection() is newer
    assert not transport_of(older).closed  # not looked at yet (the sweeper's job)
    pool.release(newer)
    clock.now += IDLE_TIMEOUT
    assert pool.idle_connection() is None
    assert transport_of(older).closed and transport_of(newer).closed


async def test_a_closed_connection_is_never_handed_out(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    a, b = await pool.connect(), await pool.connect()
    pool.release(a)
    pool.release(b)
    b.eof_received()
    b.connection_lost(None)  # the server closed it while idle
    assert pool.idle_connection() is a
    assert pool.idle_connection() is None


@pytest.mark.parametrize("why", ["already closed", "pool closed"])
async def test_release_closes_what_cannot_be_kept(clock: Clock, timers: Timers, why: str) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    conn = await pool.connect()
    if why == "already closed":
        conn.connection_lost(None)
    if why == "pool closed":
        pool.close()
    pool.release(conn)
    assert transport_of(conn).closed and conn.closed
    assert pool.idle_connection() is None
    assert timers.pending == []


async def test_at_most_max_idle_connections_are_kept(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    conns = [await pool.connect() for _ in range(MAX_IDLE + 1)]
    for conn in conns:
        pool.release(conn)
    assert transport_of(conns[-1]).closed
    assert not any(transport_of(conn).closed for conn in conns[:-1])
    handed = []
    while (idle := pool.idle_connection()) is not None:
        handed.append(idle)
    assert handed == conns[-2::-1]


async def test_the_sweeper_closes_expired_connections(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    old, young, dead = [await pool.connect() for _ in range(3)]
    pool.release(old)
    assert [t.delay for t in timers.pending] == [IDLE_TIMEOUT / 3]
    clock.now += IDLE_TIMEOUT / 2
    pool.release(young)
    pool.release(dead)
    assert len(timers.pending) == 1  # one sweeper, however many connections
    dead.connection_lost(None)
    clock.now += IDLE_TIMEOUT / 2 + 1
    timers.fire()
    assert transport_of(old).closed and not transport_of(young).closed
    assert [t.delay for t in timers.pending] == [IDLE_TIMEOUT / 3]  # young still waits
    clock.now += IDLE_TIMEOUT
    timers.fire()
    assert transport_of(young).closed and timers.pending == []  # nothing left to sweep
    assert pool.idle_connection() is None
    pool.release(await pool.connect())
    assert len(timers.pending) == 1  # a new idle connection starts a new sweeper


async def test_close_closes_idle_connections_and_stops_the_sweeper(clock: Clock, timers: Timers) -> None:
    pool = ConnectionPool(ScriptedDialer(upstream()))
    busy, idle = await pool.connect(), await pool.connect()
    pool.release(idle)
    (sweeper,) = timers.pending
    pool.close()
    # Aborted, not closed: a TLS close would wait for the server's close_notify.
    assert transport_of(idle).aborted and sweeper.cancelled
    assert not transport_of(busy).closed  # its request goes on; its release closes it
    assert pool.idle_connection() is None
    pool.release(busy)
    assert transport_of(busy).closed
    pool.close()  # twice is fine


# -- a rotating client certificate ----------------------------------------------------


async def test_connections_carry_the_generation_they_were_made_with(clock: Clock, timers: Timers) -> None:
    tls = FakeTLS()
    dialer = ScriptedDialer(upstream(tls=tls))
    pool = ConnectionPool(dialer)
    first = await pool.connect()
    tls.rotate()
    second = await pool.connect()  # the dial finds the new certificate
    assert (first.generation, second.generation) == (1, 2)
    assert dialer.dials == [(tls.ctx, False), (tls.ctx, False)]
    pool.release(first)  # made with the old certificate: not kept
    pool.release(second)
    assert transport_of(first).closed and not transport_of(second).closed
    assert pool.idle_connection() is second


async def test_a_new_generation_closes_idle_connections(clock: Clock, timers: Timers) -> None:
    tls = FakeTLS(check_at=clock.now + 60)
    pool = ConnectionPool(ScriptedDialer(upstream(tls=tls)))
    idle, busy = await pool.connect(), await pool.connect()
    pool.release(idle)
    tls.rotate()
    clock.now += 30  # before check_at: the pool does not look yet
    assert pool.idle_connection() is idle
    assert tls.checks == []
    pool.release(idle)
    clock.now += 30  # check_at reached
    assert pool.idle_connection() is None
    assert tls.checks == [clock.now] and tls.generation == 2
    assert transport_of(idle).closed
    pool.release(busy)  # a busy old one is not pooled either
    assert transport_of(busy).closed
    fresh = await pool.connect()
    pool.release(fresh)
    assert pool.idle_connection() is fresh


async def test_a_dial_that_finds_a_new_certificate_closes_idle_connections(clock: Clock, timers: Timers) -> None:
    tls = FakeTLS()
    pool = ConnectionPool(ScriptedDialer(upstream(tls=tls)))
    idle = await pool.connect()
    pool.release(idle)
    tls.rotate()
    fresh = await pool.connect()
    assert transport_of(idle).closed
    assert tls.check_at == math.inf and tls.checks == []  # found by the dial, not by check()
    pool.release(fresh)
    assert pool.idle_connection() is fresh


class GatedDialer(ScriptedDialer):
    """Dials that finish (or fail) only when the test opens the gate."""

    def __init__(self, up: Upstream) -> None:
        super().__init__(up)
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def _open(
        self, protocol_factory: Callable[[], P], ssl_context: ssl.SSLContext | None, tunnel: bool
    ) -> tuple[asyncio.Transport, P]:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return await super()._open(protocol_factory, ssl_context, tunnel)


async def test_a_waiting_request_takes_a_released_connection_and_its_dial_goes_idle(
    clock: Clock, timers: Timers
) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    busy = await pool.acquire()  # dialled: nothing idle
    dialer.gate.clear()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    assert not waiting.done() and len(dialer.dials) == 1  # its dial is under way
    pool.release(busy)  # another request is done first: the waiter takes that one
    assert await waiting is busy and busy.reused
    dialer.gate.set()
    await within_turns(lambda: len(dialer.dials) == 2)
    await settle()
    late = pool.idle_connection()  # the dial that lost is kept for the next request
    assert late is not None and late is not busy


async def test_a_request_takes_its_own_dial_when_it_comes_first(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    conn = await pool.acquire()
    assert not conn.reused and len(dialer.dials) == 1 and pool.idle_connection() is None


async def test_a_failed_dial_fails_only_its_own_request(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.fail = OSError(111, "Connection refused")
    with pytest.raises(UpstreamError, match="refused"):
        await pool.acquire()
    dialer.fail = None
    assert not (await pool.acquire()).closed


async def test_a_request_that_goes_leaves_its_dial_to_the_pool(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    dialer.gate.set()
    await within_turns(lambda: len(dialer.dials) == 1)
    await settle()
    assert pool.idle_connection() is not None


async def test_the_first_dial_goes_alone_so_that_the_others_resume_its_session(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    waiting = [asyncio.create_task(pool.acquire()) for _ in range(3)]
    await settle()
    assert len(dialer.dials) == 0 and pool._dialing == 1  # one dial under way, for three requests
    dialer.gate.set()
    conns = await asyncio.gather(*waiting)
    # The first connection served one request; the two others had dials of their own then.
    assert len(set(map(id, conns))) == 3 and len(dialer.dials) == 3


async def test_never_more_dials_than_requests_waiting(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    first, second = await pool.acquire(), await pool.acquire()  # two made: two dials may run at once
    dialer.gate.clear()
    waiting = [asyncio.create_task(pool.acquire()) for _ in range(2)]
    await settle()
    assert pool._dialing == 2
    pool.release(first)  # serves one of them: the dial under way for it will go idle
    await settle()
    assert sum(task.done() for task in waiting) == 1
    another = asyncio.create_task(pool.acquire())  # adopts a dial under way: no third one
    await settle()
    assert pool._dialing == 2
    dialer.gate.set()
    await asyncio.gather(another, *waiting)
    assert len(dialer.dials) == 4
    pool.release(second)


async def test_a_near_server_has_at_most_a_few_dials_under_way(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    first = await pool.acquire()  # dialled at once: a near server (the clock did not move)
    dialer.gate.clear()
    waiting = [asyncio.create_task(pool.acquire()) for _ in range(3 * NEAR_DIALS)]
    await settle()
    assert pool._dialing == NEAR_DIALS  # not one per request waiting
    pool.release(first)  # a released connection serves the longest waiting
    await settle()
    assert waiting[0].done() and pool._dialing == NEAR_DIALS
    dialer.gate.set()
    conns = await asyncio.gather(*waiting)
    assert len(set(map(id, conns))) == 3 * NEAR_DIALS  # each request got a connection of its own
    assert len(dialer.dials) == 3 * NEAR_DIALS  # the first, and one dial per request left over


async def test_a_far_server_gets_a_dial_per_request_waiting(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    first = asyncio.create_task(pool.acquire())
    await settle()
    clock.now += 2 * NEAR_DIAL_SECONDS  # the first handshake took this long: a far server
    dialer.gate.set()
    await first
    dialer.gate.clear()
    waiting = [asyncio.create_task(pool.acquire()) for _ in range(3 * NEAR_DIALS)]
    await settle()
    assert pool._dialing == 3 * NEAR_DIALS  # waiting for a released connection would take longer
    dialer.gate.set()
    await asyncio.gather(*waiting)


async def test_after_the_first_connection_a_failed_dial_fails_one_request(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    await pool.acquire()
    dialer.gate.clear()
    waiting = [asyncio.create_task(pool.acquire()) for _ in range(2)]
    await settle()
    dialer.fail = OSError(111, "Connection refused")
    dialer.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results)  # each its own dial's error


async def within_turns(condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds, within 100 event-loop turns: with the fake clock and
    timers no time passes here, so not ``tests.waiting.until``, which waits in seconds."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def settle() -> None:
    """Let finished dials' callbacks run."""
    for _ in range(10):
        await asyncio.sleep(0)


# -- warming up: the first request's connection, dialled at start-up (docs/startup.md §4)


async def test_warm_up_dials_one_connection_that_waits_idle(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    pool.warm_up()
    pool.warm_up()  # one under way is enough
    await within_turns(lambda: len(dialer.dials) == 1)
    await settle()
    conn = pool.idle_connection()
    assert conn is not None and not conn.closed and len(dialer.dials) == 1
    pool.release(conn)
    pool.warm_up()  # a pool with a connection needs none
    await settle()
    assert len(dialer.dials) == 1


async def test_a_request_during_the_warm_up_waits_for_it_instead_of_dialling(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    pool.warm_up()
    request = asyncio.create_task(pool.acquire())
    await settle()
    assert pool._dialing == 1 and not request.done()  # no second handshake for it
    dialer.gate.set()
    conn = await request
    assert len(dialer.dials) == 1 and not conn.closed and pool.idle_connection() is None


async def test_no_warm_up_beside_a_dial_under_way(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    probe = asyncio.create_task(pool.acquire())  # the readiness probe came first
    await settle()
    pool.warm_up()
    dialer.gate.set()
    await probe
    await settle()
    assert len(dialer.dials) == 1 and pool.idle_connection() is None


async def test_a_failed_warm_up_is_silent_and_the_next_request_dials_again(
    clock: Clock, timers: Timers, caplog: pytest.LogCaptureFixture
) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.fail = OSError(111, "Connection refused")
    pool.warm_up()
    await within_turns(lambda: pool._dialing == 0)
    await settle()
    gc.collect()  # a task whose error nobody retrieved would be logged now
    assert caplog.records == [] and pool.idle_connection() is None
    dialer.fail = None
    conn = await pool.acquire()
    assert not conn.closed and len(dialer.dials) == 1  # a dial of its own (the failed one opened nothing)


async def test_a_request_waiting_for_a_failed_warm_up_gets_its_error_as_from_its_own_dial(
    clock: Clock, timers: Timers
) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    pool.warm_up()
    request = asyncio.create_task(pool.acquire())
    await settle()
    dialer.fail = OSError(111, "Connection refused")
    dialer.gate.set()
    with pytest.raises(UpstreamError, match="refused"):
        await request
    dialer.fail = None
    assert not (await pool.acquire()).closed  # and the next one dials afresh


async def test_close_cancels_a_warm_up_under_way(clock: Clock, timers: Timers) -> None:
    dialer = GatedDialer(upstream())
    pool = ConnectionPool(dialer)
    dialer.gate.clear()
    pool.warm_up()
    await settle()
    pool.close()
    await settle()
    dialer.gate.set()
    await settle()
    assert dialer.dials == [] and pool._dialing == 0 and pool.idle_connection() is None
    pool.warm_up()  # a closed pool dials nothing more
    await settle()
    assert dialer.dials == []


async def test_a_dial_made_with_a_replaced_certificate_is_not_handed_to_a_request(clock: Clock, timers: Timers) -> None:
    # The warm-up dials before the first request's credential exists (an exec plugin's
    # certificate arrives with its first run): that connection must not carry the request.
    tls = FakeTLS()
    dialer = GatedDialer(upstream(tls=tls))
    pool = ConnectionPool(dialer)
    made: list[UpstreamConnection] = []
    connect = pool.connect

    async def recorded(*, tunnel: bool = False) -> UpstreamConnection:
        conn = await connect(tunnel=tunnel)
        made.append(conn)
        return conn

    pool.connect = recorded  # type: ignore[method-assign]
    dialer.gate.clear()
    pool.warm_up()  # with generation 1
    await settle()
    tls.rotate()
    tls.check(clock.now)  # the new certificate: generation 2
    request = asyncio.create_task(pool.acquire())
    await settle()
    dialer.gate.set()
    conn = await request
    warm, fresh = made
    assert conn is fresh and (warm.generation, fresh.generation) == (1, 2)
    assert transport_of(warm).closed and pool.idle_connection() is None
