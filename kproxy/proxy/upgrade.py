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

A body announced by an upgrade request goes out before its answer is awaited (Go's
reverse proxy sends it as the request's body): the server cannot answer before it has
it, and holding it until a 101 hung both sides. llhttp leaves such a body in the
stream after the head when it sees the upgrade (then ``Content-Length`` bytes of it
pass at once, and a chunked one passes with everything after it), and parses it as an
ordinary body when it does not (no ``Upgrade`` header: it is read whole first). What
follows the body is held until the 101. A 401 is retried with a refreshed credential
only when no body went out.
"""

from __future__ import annotations

from kproxy.errors import UpstreamError
from kproxy.http import BrokenBody, Request, Sent, status_line
from kproxy.policy.request_head import RequestHead
from kproxy.proxy.authorization import choose, refreshed
from kproxy.proxy.observe import Record, record_of
from kproxy.proxy.relay import Relay, stream_answer
from kproxy.upstream.connection import ResponseHead, UpstreamConnection

__all__ = ["upgrade"]


async def upgrade(relay: Relay, request: Request, target: bytes, impersonate: bytes | None = None) -> Sent:
    """``impersonate``: the client's identity lines (``--client-identity impersonate``).

    Long because it is one exchange's whole story: the body sent early, the answer
    awaited (and asked for again after a 401), then the splice, with what the access
    log records at each step."""
    client = request.protocol
    record = record_of(request)
    length = _body_length(request)
    parsed = b""
    if length != 0 and not request.upgraded:
        parsed = await _parsed_body(request, length is None)
    feeder = _ClientFeeder(request, record)
    # The client's bytes after the head belong to the upgraded protocol: held by the
    # feeder until the API server agrees (but for a body), then passed on untouched.
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
    early = length if request.upgraded else 0  # what of the stream is the body
    asked = relay.head(request, target, line, upgrade=True, impersonate=impersonate)
    if record is not None:
        record.audit_id = asked.audit_id
    conn, head = await _ask(relay, asked, feeder, parsed, early)
    sent = 0
    try:
        if (
            head.status == 401
            and length == 0
            and auth is not None
            and auth.refreshes_on_401
            and await refreshed(auth, line, started)
        ):
            # Nothing of the client's stream has been sent yet (the feeder holds it
            # until the 101), so the upgrade can be asked for again (with the same Audit-Id).
            conn.abort()
            again = relay.head(request, target, auth.line, upgrade=True, impersonate=impersonate, again=asked.data)
            conn, head = await _ask(relay, again, feeder, b"", 0)
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


async def _ask(
    relay: Relay, head: RequestHead, feeder: _ClientFeeder, parsed: bytes, early: int | None
) -> tuple[UpstreamConnection, ResponseHead]:
    """A new connection with the upgrade request sent on it — its body too: ``parsed``
    (read already), or ``early`` bytes of the client's stream (None: all of it) —
    and the API server's answer."""
    conn = await relay.pool.connect(tunnel=True)
    try:
        conn.start(False)
        conn.write(head.data + parsed)
        if early != 0:
            feeder.pass_early(conn, early)
        return conn, await conn.response_head()
    except BaseException:
        conn.abort()
        raise


def _body_length(request: Request) -> int | None:
    """How many bytes of body the request announces: None when chunked."""
    if request.header(b"transfer-encoding") is not None:
        return None  # (exactly "chunked": kproxy.http refuses anything else)
    return request.content_length or 0


async def _parsed_body(request: Request, chunked: bool) -> bytes:
    """The whole body llhttp parsed (it saw no upgrade), framed again as it came."""
    body = await request.read()
    if request.content.broken:
        raise BrokenBody("the request body broke off")
    if not chunked:
        return body
    return (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"


class _ClientFeeder:
    """Receives the client's bytes after an upgrade (``Connection.take_stream``): passes
    a body on at once (:meth:`pass_early`), holds the rest until the 101
    (:meth:`attach`), then passes everything on."""

    def __init__(self, request: Request, record: Record | None) -> None:
        self._request = request
        self._record = record
        self._conn: UpstreamConnection | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._early: UpstreamConnection | None = None  # where a body goes before the answer
        self._early_left: int | None = 0  # bytes of it still to pass; None: all (chunked)

    def pass_early(self, conn: UpstreamConnection, length: int | None) -> None:
        """Pass the first ``length`` bytes of the stream to ``conn`` now (None: all)."""
        self._early, self._early_left = conn, length
        conn.on_resume_writing = self._resume_client
        pending, self._pending = b"".join(self._pending), []
        if pending:
            self.feed_data(pending)
        elif self._eof:
            conn.close()

    def attach(self, conn: UpstreamConnection) -> None:
        self._early = None
        self._conn = conn
        conn.on_resume_writing = self._resume_client
        if self._pending:
            conn.write(b"".join(self._pending))
            self._pending.clear()
        if self._eof:
            conn.close()
        self._throttle()

    def detach(self) -> None:
        self._conn = self._early = None

    def feed_data(self, data: bytes) -> None:
        if self._record is not None:
            self._record.streamed_in += len(data)
        conn = self._conn
        if conn is None:
            early = self._early
            if early is None or self._early_left == 0:
                self._pending.append(data)  # held until the 101
                return
            left = self._early_left
            now, later = (data, b"") if left is None else (data[:left], data[left:])
            if left is not None:
                self._early_left = left - len(now)
            if not early.closed:
                early.write(now)
                self._throttle()
            if later:
                self._pending.append(later)
        elif not conn.closed:
            conn.write(data)
            self._throttle()

    def feed_eof(self) -> None:
        self._eof = True
        conn = self._conn or self._early
        if conn is not None:
            conn.close()

    def _throttle(self) -> None:
        # The upstream cannot take more for now: stop reading from the client.
        conn = self._conn or self._early
        transport = self._request.transport
        if conn is not None and conn.write_paused and transport is not None:
            transport.pause_reading()

    def _resume_client(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.resume_reading()
