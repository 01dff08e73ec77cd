"""Readiness: whether the API server answers kproxy, asked by kproxy itself every few seconds.

In: the relay in force (the upstream, its pool and credential; it changes when the
kubeconfig is reloaded) and how often to ask. Out: :meth:`Readiness.state`, read by the
admin listener's ``/readyz``: ready only when kproxy could obtain its credential and the
API server answered ``GET /readyz`` (``/version`` where there is no ``/readyz``) with a
2xx; otherwise a one-line reason. From the moment a graceful stop begins it is not ready.

The probe goes the way requests go (the pool, the forward proxy, TLS, the credential)
and to the API server's own path under the kubeconfig's server URL, as a client-go client
would. It runs at start-up, then every ``period`` seconds, and only while the admin
listener is on. Changes are logged once each.
"""

from __future__ import annotations

import asyncio
import time

from kproxy.errors import RequestError
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.policy.request_head import request_head
from kproxy.policy.routing import upstream_path
from kproxy.proxy.relay import Relay
from kproxy.upstream.connection import UpstreamConnection

__all__ = ["Readiness", "probe"]

# Enough for the API server's answer; a longer body is not read.
_MAX_BODY = 64 * 1024
_ANSWER_TIMEOUT = 5.0  # after the connection is made (which --connect-timeout bounds)


class Readiness:
    """The probe loop and its latest verdict."""

    def __init__(self, relay: Relay, period: float) -> None:
        self.relay = relay  # replaced when the upstream is reloaded
        self._period = period
        self._ready = False
        self._reason = "the API server has not been asked yet"
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.checked_at = 0.0  # monotonic time of the last answer or failure
        self.probes = 0

    def state(self) -> tuple[bool, str]:
        if self._stopping:
            return False, "kproxy is shutting down"
        return self._ready, self._reason

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def stopping(self) -> None:
        """A graceful stop began: not ready from now on, and no more probes."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def check(self) -> None:
        """Ask once, now, and take the answer."""
        reason = await probe(self.relay)
        self.probes += 1
        self.checked_at = time.monotonic()
        ready = reason is None
        if ready != self._ready or (reason is not None and reason != self._reason):
            if ready:
                log.info("ready: the API server %s answers", self.relay.upstream.display)
            else:
                log.warning("not ready: %s", reason)
        self._ready = ready
        self._reason = reason or "ok"

    async def _loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._period)


async def probe(relay: Relay) -> str | None:
    """None when the API server answered 2xx; else why not, in one line."""
    upstream = relay.upstream
    line = upstream.auth_header
    if relay.auth is not None:
        try:
            line = await relay.auth.fresh()
        except RequestError as exc:
            return f"no credential for the API server: {exc.message}"
    try:
        status = await _get(relay, "/readyz", line)
        if status == 404:  # an API server (or a gateway in front of one) without /readyz
            status = await _get(relay, "/version", line)
    except RequestError as exc:
        if exc.cause is not None:
            tally.upstream_error(exc.cause)
        return f"cannot reach the API server: {exc.message}"
    except TimeoutError:
        tally.upstream_error("timeout")
        return f"the API server {upstream.display} did not answer within {_ANSWER_TIMEOUT:g}s"
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return f"the API server {upstream.display} refused kproxy's credential ({status})"
    return f"the API server {upstream.display} answered {status}"


async def _get(relay: Relay, path: str, line: bytes) -> int:
    upstream = relay.upstream
    target = upstream_path(path, upstream.server_path, True).encode()
    head = request_head(
        relay.template,
        "GET",
        target,
        [(b"Accept", b"application/json, */*")],
        upgrade=False,
        auth_line=line,
        client=None,
        audit=relay.audit,
    )
    pool = relay.pool
    conn = pool.idle_connection() or await pool.connect()
    reusable = False
    try:
        async with asyncio.timeout(_ANSWER_TIMEOUT):
            conn.start(False)
            conn.write(head.data)
            try:
                answer = await conn.response_head()
            except RequestError:
                if not (conn.reused and not conn.got_bytes):
                    raise
                # The server had closed the idle connection: a new one, as the relay does.
                conn.abort()
                conn = await pool.connect()
                conn.start(False)
                conn.write(head.data)
                answer = await conn.response_head()
            reusable = await _drain(conn) and answer.keep_alive
        return answer.status
    finally:
        if reusable:
            pool.release(conn)
        else:
            conn.abort()


async def _drain(conn: UpstreamConnection) -> bool:
    """Read the (small) body; False when it is too long to keep the connection for."""
    seen = 0
    while chunk := await conn.read_body():
        seen += len(chunk)
        if seen > _MAX_BODY:
            return False
    return True
