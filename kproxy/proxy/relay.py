"""Forward one client request to the API server and stream the answer back.

In: an accepted :class:`~kproxy.http.server.Request`, the upstream path (encoding kept) and the
:class:`~kproxy.config.options.Upstream`. Out: the client's response, streamed chunk by chunk
in both directions with backpressure; ``Upgrade`` requests become a raw byte splice.

Header rules follow ``httputil.ReverseProxy`` as kubectl uses it (reference §6.2, §8):
hop-by-hop headers are dropped both ways, ``Host`` becomes the server's, credentials
are added only where the client sent none, ``X-Forwarded-For`` gets the client
address appended. Unlike kubectl, nothing is decompressed and no ``Accept-Encoding``
is added: encodings pass through as the client asked.

Credentials that change (``Upstream.auth``) are looked up per request with one clock
read against a cached deadline; a fixed one costs nothing. When the API server answers
401 to a credential kproxy added, it is refreshed once and the request sent again if
that is safe (no body, or a small one kept for the purpose); a second 401 goes to the
client as it came.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from kproxy.config.options import Upstream
from kproxy.credentials.sources import AuthSource
from kproxy.errors import RequestError, UpstreamError
from kproxy.http.server import Request, Sent, status_line
from kproxy.policy.gonet import unmap_ipv4
from kproxy.policy.headers import (
    HOP_BY_HOP,
    UPGRADE_DROP,
    canonical_name,
    connection_tokens,
    is_upgrade,
    response_lines_raw,
)
from kproxy.upstream.pool import ConnectionPool, ResponseHead, UpstreamConnection

__all__ = ["Relay", "is_upgrade"]

log = logging.getLogger("kproxy")


class Relay:
    def __init__(self, upstream: Upstream, pool: ConnectionPool) -> None:
        self._up = upstream
        self._pool = pool
        self._head_prefix = b"Host: " + upstream.host_header + b"\r\n"
        self._auth = upstream.auth
        # An http:// API server behind an HTTP proxy: requests go to the proxy in absolute
        # form, with the proxy's credentials (Go's transport, reference §4). Upgrades are
        # tunnelled with CONNECT instead (see the dialer), so they keep the origin form.
        route = upstream.proxy
        self._absolute = b""
        self._proxy_line = b""
        if route is not None and route.absolute_form and upstream.scheme == "http":
            self._absolute = b"http://" + upstream.host_header
            self._proxy_line = route.authorization

    # -- request head -------------------------------------------------------------------

    def _request_head(
        self, request: Request, target: bytes, upgrade: bool, auth_line: bytes
    ) -> tuple[bytes, bool, bool]:
        """The upstream request head; also (has_body, chunked).

        ``auth_line`` is added when the client sent no ``Authorization`` of its own.
        """
        up = self._up
        raw = request.raw_headers
        hop = UPGRADE_DROP if upgrade else HOP_BY_HOP
        listed = connection_tokens(raw) if not upgrade else frozenset()
        if self._absolute and not upgrade:
            target = self._absolute + target
            parts = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n", self._head_prefix, self._proxy_line]
        else:
            parts = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n", self._head_prefix]
        has_auth = has_impersonation = has_agent = False
        content_length: bytes | None = None
        chunked = False
        te_trailers = False
        forwarded_for: list[bytes] = []
        for name, value in raw:
            lname = name.lower()
            if lname == b"host":
                continue
            if lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"te":
                te_trailers = te_trailers or b"trailers" in value.lower()
            elif lname == b"content-length":
                content_length = value
                if not upgrade:
                    continue
            elif lname == b"x-forwarded-for":
                forwarded_for.append(value)
                continue
            elif lname == b"authorization":
                has_auth = True
            elif lname == b"impersonate-user":
                has_impersonation = True
            elif lname == b"user-agent":
                has_agent = True
            elif lname == b"expect":
                continue  # answered locally: see _send_body
            if lname in hop or lname in listed:
                continue
            parts += (canonical_name(name), b": ", value, b"\r\n")
        if te_trailers and not upgrade:
            parts.append(b"Te: trailers\r\n")
        if not has_auth:
            parts.append(auth_line)
        if not has_impersonation:
            # client-go skips its impersonation when the request already has any.
            parts.append(up.impersonation_headers)
        if not has_agent:
            parts.append(up.user_agent_header)
        peer = request.protocol.peer
        if isinstance(peer, tuple) and peer:
            client = unmap_ipv4(peer[0]).encode()
            prior = b", ".join(forwarded_for)
            parts += (b"X-Forwarded-For: ", prior + b", " + client if prior else client, b"\r\n")
        elif forwarded_for:  # a unix socket client: pass the chain on unchanged
            parts += (b"X-Forwarded-For: ", b", ".join(forwarded_for), b"\r\n")
        has_body = chunked or (content_length is not None and content_length.strip() != b"0")
        # Framing: re-added for ordinary requests (Transfer-Encoding is hop-by-hop);
        # an upgrade request already carried the client's own headers through.
        if not upgrade:
            if chunked:
                parts.append(b"Transfer-Encoding: chunked\r\n")
            elif content_length is not None:
                parts += (b"Content-Length: ", content_length, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts), has_body, chunked

    # -- ordinary requests ----------------------------------------------------------------

    def forward(self, request: Request, target: bytes) -> Awaitable[Sent]:
        """The exchange to await; a plain function so that no coroutine frame of its own
        sits between the handler and the exchange on every resumption."""
        auth = self._auth
        if auth is None:
            head_bytes, has_body, chunked = self._request_head(request, target, False, self._up.auth_header)
            return self._exchange(request, head_bytes, has_body, chunked, None, None)
        return self._forward_with(auth, request, target)

    @staticmethod
    def _credential_now(auth: AuthSource, request: Request) -> tuple[bytes | None, float] | None:
        """The ``Authorization`` line to add (None: it needs a refresh, to be awaited) and
        when it was chosen; None when the client sent its own, which passes untouched
        (client-go: "if a user has already set credentials, use that") and for which no
        plugin runs."""
        if request.header(b"authorization") is not None:
            return None
        started = time.monotonic()
        return (auth.line if started < auth.deadline else None), started

    @classmethod
    async def _credential(cls, auth: AuthSource, request: Request) -> tuple[bytes, float] | None:
        """:meth:`_credential_now`, refreshed when due."""
        chosen = cls._credential_now(auth, request)
        if chosen is None:
            return None
        line, started = chosen
        return (line if line is not None else await auth.fresh()), started

    async def _forward_with(self, auth: AuthSource, request: Request, target: bytes) -> Sent:
        chosen = await self._credential(auth, request)
        if chosen is None:
            head_bytes, has_body, chunked = self._request_head(request, target, False, b"")
            return await self._exchange(request, head_bytes, has_body, chunked, None, None)
        line, started = chosen
        head_bytes, has_body, chunked = self._request_head(request, target, False, line)
        if not auth.refreshes_on_401:
            return await self._exchange(request, head_bytes, has_body, chunked, None, None)
        body = None
        if has_body:
            body = await _small_body(request, chunked)
            if body is None:  # streamed: it cannot be sent twice, so no retry after a 401
                return await self._exchange(request, head_bytes, has_body, chunked, None, None)

        async def retry() -> bytes | None:
            if not await _refreshed(auth, line, started):
                return None
            return self._request_head(request, target, False, auth.line)[0]

        return await self._exchange(request, head_bytes, has_body, chunked, body, retry)

    async def _exchange(
        self,
        request: Request,
        head_bytes: bytes,
        has_body: bool,
        chunked: bool,
        body: bytes | None,
        retry: Callable[[], Awaitable[bytes | None]] | None,
    ) -> Sent:
        """One request/response; ``body``: the request body when already read (replayable);
        ``retry``: after a 401, the head to send again with, or None to relay the 401."""
        no_body = request.method == "HEAD"
        conn = self._pool.idle_connection() or await self._pool.connect()
        reusable = False
        sender: asyncio.Task[None] | None = None
        try:
            conn.start(no_body)
            conn.write(head_bytes)
            if body is not None:
                conn.write(body)
            elif has_body:
                sender = asyncio.create_task(_send_body(request, conn, chunked))
            try:
                head = await conn.response_head()
            except UpstreamError:
                if conn.reused and not conn.got_bytes and _replayable(request, has_body):
                    # The server closed an idle keep-alive connection as we reused it.
                    # Go's transport retries then, for replayable requests only: the
                    # server may have acted on anything else before it closed.
                    conn.close()
                    conn = await self._pool.connect()
                    conn.start(no_body)
                    conn.write(head_bytes)
                    head = await conn.response_head()
                else:
                    raise
            if head.status == 407 and self._absolute:
                raise self._proxy_auth_error()
            if head.status == 401 and retry is not None:
                again = await retry()
                if again is not None:
                    conn.abort()  # the 401's body is not wanted; its framing is unknown
                    return await self._exchange(request, again, has_body, chunked, body, None)
            if conn.complete:
                # The whole answer is here already: head and body leave in one write.
                _send_whole(request, conn, head)
            elif not await _stream(request, conn, head):
                return Sent(head.status)
            if sender is not None:
                if not sender.done():
                    # The server answered before reading the whole body (e.g. 401): the
                    # connection's framing is now unknown, so it is not reused.
                    sender.cancel()
                    return Sent(head.status)
                sender.result()
            reusable = head.keep_alive
            return Sent(head.status)
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if reusable:
                self._pool.release(conn, True)
            else:
                conn.abort()

    # -- the fast path: plain requests on callbacks ----------------------------------------

    def start_fast(self, request: Request, target: bytes) -> bool:
        """Send ``request`` on an idle pooled connection and answer it from the upstream
        connection's callback, with no coroutine or task switch; False to decline.

        Taken: GET, HEAD and OPTIONS without a body, direct or tunnelled, with the
        credential in force (one due for a refresh needs awaiting: declined). These are
        replayable (Go's rule), so whatever goes wrong before the answer's head can
        start over on the ordinary path, which knows retries, errors and Status answers;
        an answer that does not arrive whole, or a 401 to a credential that can be
        refreshed, continues there too.
        """
        if self._absolute or request.method not in _FAST_METHODS:
            return False
        auth = self._auth
        line = self._up.auth_header
        started = 0.0
        if auth is not None:
            chosen = self._credential_now(auth, request)
            if chosen is None:
                auth, line = None, b""
            else:
                fresh, started = chosen
                if fresh is None:
                    return False
                line = fresh
                if not auth.refreshes_on_401:
                    auth = None
        client = request.protocol
        memo = client.relay_memo
        if (
            memo is not None
            and memo[0] == target
            and memo[1] == line
            and memo[2] == request.method
            and memo[3] == request.raw_headers
        ):
            # The same request as the last one on this connection (a poller, a dashboard):
            # the same head goes out, without building it again.
            head_bytes = memo[4]
        else:
            head_bytes, has_body, _ = self._request_head(request, target, False, line)
            if has_body:
                return False
            client.relay_memo = (target, line, request.method, request.raw_headers, head_bytes)
        conn = self._pool.idle_connection()
        if conn is None:
            return False
        conn.start(request.method == "HEAD")
        conn.write(head_bytes)
        conn.on_event = _FastExchange(self, request, conn, target, None if auth is None else (auth, line, started))
        client.upstream_in_flight = conn
        return True

    async def _after_fast_401(
        self, request: Request, target: bytes, refused: tuple[AuthSource, bytes, float], head: ResponseHead, body: bytes
    ) -> Sent:
        """A fast exchange's credential was refused: refresh once and send again on the
        ordinary path, or relay the 401 as it came (as _exchange does)."""
        auth, line, started = refused
        if await _refreshed(auth, line, started):
            head_bytes = self._request_head(request, target, False, auth.line)[0]
            return await self._exchange(request, head_bytes, False, False, None, None)
        lines, length, has_date = response_lines_raw(head.raw)
        request.protocol.send_complete(request, head.status, lines, body, length=length, has_date=has_date)
        return Sent(head.status)

    def _proxy_auth_error(self) -> UpstreamError:
        route = self._up.proxy
        assert route is not None
        sent = (
            "the credentials from the proxy URL were rejected"
            if route.credentials
            else "no credentials were sent; put them in the proxy URL as http://USER:PASSWORD@HOST:PORT"
        )
        return UpstreamError(
            f"the proxy {route.display} (from {route.source}) requires proxy authentication "
            f"(407 Proxy Authentication Required): {sent}"
        )

    # -- upgrades -------------------------------------------------------------------------

    async def upgrade(self, request: Request, target: bytes) -> Sent:
        client = request.protocol
        feeder = _ClientFeeder(request)
        # The client's bytes after the head belong to the upgraded protocol: held by the
        # feeder until the API server agrees, then passed on untouched.
        client.take_stream(feeder)
        auth = self._auth
        line = self._up.auth_header
        started = 0.0
        if auth is not None:
            chosen = await self._credential(auth, request)
            if chosen is None:
                auth, line = None, b""
            else:
                line, started = chosen
        head_bytes, _, _ = self._request_head(request, target, True, line)
        conn = await self._pool.connect(tunnel=True)
        try:
            conn.start(False)
            conn.write(head_bytes)
            head = await conn.response_head()
            if (
                head.status == 401
                and auth is not None
                and auth.refreshes_on_401
                and await _refreshed(auth, line, started)
            ):
                # Nothing of the client's stream has been sent yet (the feeder holds it
                # until the 101), so the upgrade can be asked for again.
                conn.abort()
                head_bytes, _, _ = self._request_head(request, target, True, auth.line)
                conn = await self._pool.connect(tunnel=True)
                conn.start(False)
                conn.write(head_bytes)
                head = await conn.response_head()
            if head.status != 101:
                if head.status < 400:
                    raise UpstreamError(f"invalid upgrade response: status code {head.status}")
                # An error from the API server (404 pod not found, 403...) is relayed.
                await _stream(request, conn, head, close=True)
                return Sent(head.status)
            tail = conn.switch_to_raw()
            # The API server's 101 goes to the client as it came (kubectl does the same).
            client.write_raw(status_line(101) + head.raw + b"\r\n" + tail)
            feeder.attach(conn)
            while chunk := await conn.read_body():
                client.write_raw(chunk)
                if client.write_paused:
                    await client.drain()
            return Sent(101)
        finally:
            feeder.detach()
            conn.abort()


class _FastExchange:
    """The upstream connection's callback for one fast exchange (Relay.start_fast)."""

    __slots__ = ("_conn", "_refreshable", "_relay", "_request", "_target")

    def __init__(
        self,
        relay: Relay,
        request: Request,
        conn: UpstreamConnection,
        target: bytes,
        refreshable: tuple[AuthSource, bytes, float] | None,
    ) -> None:
        self._relay = relay
        self._request = request
        self._conn = conn
        self._target = target
        self._refreshable = refreshable  # the credential added, if a 401 may refresh it

    def __call__(self) -> None:
        conn = self._conn
        request = self._request
        client = request.protocol
        head = conn.head
        if head is None:
            if conn.error is None and not conn.closed:
                return  # the head is not complete yet
            conn.on_event = None
            client.upstream_in_flight = None
            conn.abort()
            if conn.reused and not conn.got_bytes:
                # The server closed the idle connection as we reused it: the request is
                # replayable, so it starts over on the ordinary path (Go's retry).
                client.fast_fallback(request, None)
            else:
                error = conn.error or UpstreamError("the API server closed the connection")
                client.fast_fallback(request, lambda: _raise(error))
            return
        conn.on_event = None
        relay = self._relay
        if not conn.complete:
            client.fast_fallback(request, lambda: _finish_streaming(relay._pool, request, conn, head))
            return
        client.upstream_in_flight = None
        refused = self._refreshable
        if head.status == 401 and refused is not None:
            body = conn.take_buffered_body()
            conn.abort()
            client.fast_fallback(request, lambda: relay._after_fast_401(request, self._target, refused, head, body))
            return
        _send_whole(request, conn, head)
        if head.keep_alive:
            relay._pool.release(conn, True)
        else:
            conn.abort()
        client.fast_done()


async def _raise(error: Exception) -> Sent:
    raise error


async def _finish_streaming(
    pool: ConnectionPool, request: Request, conn: UpstreamConnection, head: ResponseHead
) -> Sent:
    reusable = False
    try:
        reusable = await _stream(request, conn, head) and head.keep_alive
        return Sent(head.status)
    finally:
        request.protocol.upstream_in_flight = None
        if reusable:
            pool.release(conn, True)
        else:
            conn.abort()


def _send_whole(request: Request, conn: UpstreamConnection, head: ResponseHead) -> None:
    lines, length, has_date = response_lines_raw(head.raw)
    request.protocol.send_complete(
        request, head.status, lines, conn.take_buffered_body(), length=length, has_date=has_date
    )


async def _stream(request: Request, conn: UpstreamConnection, head: ResponseHead, close: bool = False) -> bool:
    """Relay an answer chunk by chunk as it comes; False if the upstream failed midway.
    ``close``: end the client's connection after it."""
    lines, length, has_date = response_lines_raw(head.raw)
    client = request.protocol
    client.send_head(request, head.status, lines, length=length, has_date=has_date, close=close)
    try:
        while chunk := await conn.read_body():
            client.send_body(chunk)
            if client.write_paused:
                await client.drain()
    except UpstreamError as exc:
        # The head is out: a Status can no longer be sent. Cut the client's
        # connection so it sees a truncated response, never a complete one.
        log.error("Error while proxying request: %s", exc.message)
        if request.transport is not None:
            request.transport.abort()
        return False
    client.end_body()
    return True


class _ClientFeeder:
    """Receives the client's bytes after an upgrade (``ClientConnection.take_stream``)."""

    def __init__(self, request: Request) -> None:
        self._request = request
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


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FAST_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Request bodies up to this size are read before sending when the credential can be
# refreshed, so that a 401 can be answered by sending the request again.
_REPLAY_LIMIT = 64 * 1024


async def _small_body(request: Request, chunked: bool) -> bytes | None:
    length = request.content_length
    if chunked or length is None or length > _REPLAY_LIMIT:
        return None
    _continue(request)
    return await request.read()


async def _refreshed(auth: AuthSource, used: bytes, started: float) -> bool:
    """After a 401 to ``used``: refresh once; True if there is a new credential to retry with."""
    try:
        again = await auth.after_401(used, started)
    except RequestError as exc:
        log.error("refreshing credentials after a 401: %s", exc.message)
        return False
    if again:
        log.info("the API server answered 401: retrying once with refreshed credentials")
    return again


def _continue(request: Request) -> None:
    if request.headers.get("Expect", "").lower() == "100-continue":
        # We start reading at once, so tell the client to go ahead (RFC 9110 §10.1.1)
        # rather than make it wait out its timeout.
        if request.transport is not None:
            request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def _replayable(request: Request, has_body: bool) -> bool:
    # net/http Request.isReplayable
    if has_body:
        return False
    headers = request.headers
    return request.method in _IDEMPOTENT or "Idempotency-Key" in headers or "X-Idempotency-Key" in headers


async def _send_body(request: Request, conn: UpstreamConnection, chunked: bool) -> None:
    _continue(request)
    content = request.content
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        if chunked:
            conn.write(b"%x\r\n" % len(chunk))
            conn.write(chunk)
            conn.write(b"\r\n")
        else:
            conn.write(chunk)
        await conn.drain()
    if chunked:
        conn.write(b"0\r\n\r\n")
