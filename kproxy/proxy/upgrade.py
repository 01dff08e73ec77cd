"""Upgrade requests (exec, attach, port-forward; WebSocket and SPDY): a raw byte splice.

In: a request with ``Connection: Upgrade`` that passed the filter, its upstream target,
and the :class:`~kproxy.proxy.relay.Relay`. Out: the API server's answer relayed as it
came — a 101 followed by the upgraded stream in both directions with backpressure until
either side closes, or an error status (404 pod not found, 403 ...) relayed and the
connection closed, as kubectl's ``UpgradeAwareHandler`` does (``docs/kubectl-proxy.md``
§8). An answer below 400 other than 101 is a 502 (client-go's "invalid upgrade response").

Upgrades never use pooled connections (the connection becomes the stream), and reach an
``http://`` API server behind an HTTP proxy by ``CONNECT``, as client-go's SPDY and
WebSocket dialers do.
"""

from __future__ import annotations

from kproxy.errors import UpstreamError
from kproxy.http import Request, Sent, status_line
from kproxy.policy.request_head import RequestHead
from kproxy.proxy.authorization import choose, refreshed
from kproxy.proxy.observe import Record, record_of
from kproxy.proxy.relay import Relay, stream_answer
from kproxy.upstream.connection import ResponseHead, UpstreamConnection

__all__ = ["upgrade"]


async def upgrade(relay: Relay, request: Request, target: bytes, impersonate: bytes | None = None) -> Sent:
    """``impersonate``: the client's identity lines (``--client-identity impersonate``)."""
    client = request.protocol
    record = record_of(request)
    feeder = _ClientFeeder(request, record)
    # The client's bytes after the head belong to the upgraded protocol: held by the
    # feeder until the API server agrees, then passed on untouched.
    client.take_stream(feeder)
    auth = relay.auth
    line = relay.upstream.auth_header
    started = 0.0
    if auth is not None:
        chosen = await choose(auth, request, impersonate is None)
        if chosen is None:
            auth, line = None, b""
        else:
            line, started = chosen
    asked = relay.head(request, target, line, upgrade=True, impersonate=impersonate)
    if record is not None:
        record.audit_id = asked.audit_id
    conn, head = await _ask(relay, asked)
    sent = 0
    try:
        if head.status == 401 and auth is not None and auth.refreshes_on_401 and await refreshed(auth, line, started):
            # Nothing of the client's stream has been sent yet (the feeder holds it
            # until the 101), so the upgrade can be asked for again (with the same Audit-Id).
            conn.abort()
            again = relay.head(request, target, auth.line, upgrade=True, impersonate=impersonate, again=asked.data)
            conn, head = await _ask(relay, again)
        if head.status != 101:
            if head.status < 400:
                raise UpstreamError(f"invalid upgrade response: status code {head.status}", "protocol")
            # An error from the API server (404 pod not found, 403...) is relayed.
            streamed = await stream_answer(request, conn, head, close=True)
            return Sent(head.status, streamed or 0, streamed is None)
        tail = conn.switch_to_raw()
        # The API server's 101 goes to the client as it came (kubectl does the same).
        client.write_raw(status_line(101) + head.raw + b"\r\n" + tail)
        if record is not None:
            record.status = 101
        sent = len(tail)
        feeder.attach(conn)
        while chunk := await conn.read_body():
            client.write_raw(chunk)
            sent += len(chunk)
            if client.write_paused:
                await client.drain()
        return Sent(101, sent)
    finally:
        if record is not None and record.status == 101:
            record.bytes_out = sent
        feeder.detach()
        conn.abort()


async def _ask(relay: Relay, head: RequestHead) -> tuple[UpstreamConnection, ResponseHead]:
    """A new connection with the upgrade request sent on it, and the API server's answer."""
    conn = await relay.pool.connect(tunnel=True)
    try:
        conn.start(False)
        conn.write(head.data)
        return conn, await conn.response_head()
    except BaseException:
        conn.abort()
        raise


class _ClientFeeder:
    """Receives the client's bytes after an upgrade (``Connection.take_stream``)."""

    def __init__(self, request: Request, record: Record | None) -> None:
        self._request = request
        self._record = record
        self._conn: UpstreamConnection | None = None
        self._pending: list[bytes] = []
        self._eof = False

    def attach(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        conn.on_resume_writing = self._resume_client
        if self._pending:
            conn.write(b"".join(self._pending))
            self._pending.clear()
        if self._eof:
            conn.close()
        self._throttle()

    def detach(self) -> None:
        self._conn = None

    def feed_data(self, data: bytes) -> None:
        if self._record is not None:
            self._record.streamed_in += len(data)
        conn = self._conn
        if conn is None:
            self._pending.append(data)
        elif not conn.closed:
            conn.write(data)
            self._throttle()

    def feed_eof(self) -> None:
        self._eof = True
        if self._conn is not None:
            self._conn.close()

    def _throttle(self) -> None:
        # The upstream cannot take more for now: stop reading from the client.
        conn = self._conn
        transport = self._request.transport
        if conn is not None and conn.write_paused and transport is not None:
            transport.pause_reading()

    def _resume_client(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.resume_reading()
