"""Forward one client request to the API server and stream the answer back.

In: an accepted :class:`~kproxy.http.Request`, the upstream target (encoding kept) and
the :class:`~kproxy.config.upstream.Upstream`. Out: the client's answer, streamed chunk by
chunk in both directions with backpressure. The head is built by
:mod:`kproxy.policy.request_head`; upgrades are :mod:`kproxy.proxy.upgrade`'s, plain
requests seen before usually :mod:`kproxy.proxy.fast`'s.

When the API server answers 401 to a credential kproxy added, it is refreshed once and
the request sent again if that is safe (no body, or a small one kept for the purpose); a
second 401 goes to the client as it came. A pooled connection the server closed as we
reused it is retried for replayable requests only, as Go's transport does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

from kproxy.config.upstream import Upstream
from kproxy.credentials.sources import AuthSource
from kproxy.errors import UpstreamError
from kproxy.http import BrokenBody, Request, Sent
from kproxy.log import log_throttled
from kproxy.metrics import tally
from kproxy.policy.audit_id import LINE_LENGTH, AuditIds
from kproxy.policy.headers import response_lines_raw
from kproxy.policy.request_head import HeadTemplate, RequestHead, request_head
from kproxy.proxy.authorization import choose, refreshed
from kproxy.proxy.observe import record_of
from kproxy.upstream.connection import STREAM_PIECE, ResponseHead, UpstreamConnection
from kproxy.upstream.lane import H2Lane
from kproxy.upstream.pool import ConnectionPool

__all__ = ["Relay", "send_whole", "stream_answer"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Request bodies up to this size are read before sending when the credential can be
# refreshed, so that a 401 can be answered by sending the request again.
_REPLAY_LIMIT = 64 * 1024

Retry = Callable[[], Awaitable[bytes | None]]


class Relay:
    """``lane``: the HTTP/2 lane for long-running requests; None sends them over HTTP/1.1
    (``--disable-http2``, plain ``http://`` API servers)."""

    def __init__(self, upstream: Upstream, pool: ConnectionPool, lane: H2Lane | None = None) -> None:
        self.upstream = upstream
        self.pool = pool
        self.lane = lane
        self.auth = upstream.auth
        route = upstream.proxy
        absolute = route is not None and route.absolute_form and upstream.scheme == "http"
        self.template = HeadTemplate(
            host_header=upstream.host_header,
            impersonation=upstream.impersonation_headers,
            user_agent=upstream.user_agent_header,
            absolute_prefix=b"http://" + upstream.host_header if absolute else b"",
            proxy_line=route.authorization if absolute and route is not None else b"",
        )
        # Requests go to an HTTP proxy in absolute form: no fast path there (its 407s
        # need the ordinary path's message).
        self.absolute = absolute
        # Every request carries an Audit-Id: the client's, or one of these.
        self.audit_ids = AuditIds(os.urandom)
        self.audit = self.audit_ids.line
        self.audit_take = self.audit_ids.take  # the fast path's way (see AuditIds)

    @property
    def h2_ready(self) -> bool:
        """Long-running requests go over HTTP/2 (unless the API server turns out not to speak it)."""
        lane = self.lane
        return lane is not None and not lane.unsupported

    def head(
        self,
        request: Request,
        target: bytes,
        line: bytes,
        *,
        upgrade: bool = False,
        impersonate: bytes | None = None,
        again: bytes = b"",
    ) -> RequestHead:
        """The upstream head for ``request``, with ``line`` as the credential to add and, in
        ``--client-identity impersonate`` mode, the client's identity (``impersonate``);
        ``again``: the head this one replaces (a retry keeps its Audit-Id)."""
        peer = request.protocol.peer
        client = str(peer[0]) if isinstance(peer, tuple) and peer else None
        audit = self.audit
        if again:
            # The id that ended it, if it was one of ours (the client's own is kept anyway).
            same = again[-LINE_LENGTH:]
            audit = lambda: same  # noqa: E731
        return request_head(
            self.template,
            request.method,
            target,
            request.raw_headers,
            upgrade=upgrade,
            auth_line=line,
            client=client,
            impersonate=impersonate,
            audit=audit,
        )

    def forward(
        self, request: Request, target: bytes, impersonate: bytes | None = None, long_running: bool = False
    ) -> Awaitable[Sent]:
        """The exchange to await; a plain function so that no coroutine frame of its own
        sits between the handler and the exchange on every resumption. ``impersonate``:
        the client's identity lines (``--client-identity impersonate``); ``long_running``
        (watches, followed logs) go over the HTTP/2 lane when there is one."""
        auth = self.auth
        if auth is None:
            head = self.head(request, target, self.upstream.auth_header, impersonate=impersonate)
            if long_running and self.lane is not None and not head.has_body:
                return self.exchange_h2(request, head, None)
            return self.exchange(request, head, None, None)
        return self._forward_with(auth, request, target, impersonate, long_running)

    async def _forward_with(
        self, auth: AuthSource, request: Request, target: bytes, impersonate: bytes | None, long_running: bool
    ) -> Sent:
        chosen = await choose(auth, request, impersonate is None)
        if chosen is None:
            return await self._send(request, self.head(request, target, b""), None, long_running)
        line, started = chosen
        head = self.head(request, target, line, impersonate=impersonate)
        if not auth.refreshes_on_401:
            return await self._send(request, head, None, long_running)
        body = None
        if head.has_body:
            body = await _small_body(request, head.chunked)
            if body is None:  # streamed: it cannot be sent twice, so no retry after a 401
                return await self.exchange(request, head, None, None)

        async def retry() -> bytes | None:
            if not await refreshed(auth, line, started):
                return None
            return self.head(request, target, auth.line, impersonate=impersonate, again=head.data).data

        return await self._send(request, head, retry, long_running, body)

    def _send(
        self, request: Request, head: RequestHead, retry: Retry | None, long_running: bool, body: bytes | None = None
    ) -> Awaitable[Sent]:
        if long_running and self.lane is not None and not head.has_body:
            return self.exchange_h2(request, head, retry)
        return self.exchange(request, head, body, retry)

    async def exchange_h2(self, request: Request, head: RequestHead, retry: Retry | None) -> Sent:
        """A long-running request over the HTTP/2 lane; over HTTP/1.1 when the API server
        does not speak HTTP/2. The stream is cancelled (``RST_STREAM``) when the client
        goes before the answer ends."""
        assert self.lane is not None
        stream = await self.lane.request(head.data)
        if stream is None:
            return await self.exchange(request, head, None, retry)
        record = record_of(request)
        if record is not None:
            record.audit_id = head.audit_id
        try:
            answer = await stream.response_head()
            if answer.status == 401 and retry is not None:
                again = await retry()
                if again is not None:
                    stream.close()
                    retried = RequestHead(again, False, False, head.audit_id, head.fresh)
                    return await self.exchange_h2(request, retried, None)
            if stream.complete:
                return Sent(answer.status, send_whole(request, stream, answer))
            streamed = await stream_answer(request, stream, answer)
            if streamed is None:
                return Sent(answer.status, record.bytes_out if record is not None else 0, True)
            return Sent(answer.status, streamed)
        finally:
            stream.close()

    async def exchange(self, request: Request, head: RequestHead, body: bytes | None, retry: Retry | None) -> Sent:
        """One request/response; ``body``: the request body when already read (replayable);
        ``retry``: after a 401, the head to send again with, or None to relay the 401."""
        no_body = request.method == "HEAD"
        record = record_of(request)
        if record is not None:
            record.audit_id = head.audit_id
        conn = await self.pool.acquire()
        reusable = False
        sender: asyncio.Task[None] | None = None
        try:
            conn.start(no_body)
            conn.write(head.data)
            if body is not None:
                conn.write(body)
            elif head.has_body:
                sender = asyncio.create_task(_send_body(request, conn, head.chunked))
            try:
                answer = await conn.response_head()
            except UpstreamError:
                if sender is not None and sender.done() and not sender.cancelled():
                    sender.result()  # the client's body broke off: that, not the aborted connection, is the news
                if not (conn.reused and not conn.got_bytes and _replayable(request, head.has_body)):
                    raise
                # The server closed an idle keep-alive connection as we reused it. Go's
                # transport retries then, for replayable requests only: the server may
                # have acted on anything else before it closed.
                conn.close()
                conn = await self.pool.connect()
                conn.start(no_body)
                conn.write(head.data)
                answer = await conn.response_head()
            if answer.status == 407 and self.absolute:
                raise self.proxy_auth_error()
            if answer.status == 401 and retry is not None:
                again = await retry()
                if again is not None:
                    conn.abort()  # the 401's body is not wanted; its framing is unknown
                    retried = RequestHead(again, head.has_body, head.chunked, head.audit_id, head.fresh)
                    return await self.exchange(request, retried, body, None)
            if conn.complete:
                sent = send_whole(request, conn, answer)  # head and body leave in one write
            else:
                streamed = await stream_answer(request, conn, answer)
                if streamed is None:
                    return Sent(answer.status, record.bytes_out if record is not None else 0, True)
                sent = streamed
            if sender is not None:
                if not sender.done():
                    # The server answered before reading the whole body (e.g. 401): the
                    # connection's framing is now unknown, so it is not reused.
                    sender.cancel()
                    return Sent(answer.status, sent)
                sender.result()
            reusable = answer.keep_alive
            return Sent(answer.status, sent)
        finally:
            if sender is not None:
                if not sender.done():
                    sender.cancel()
                elif not sender.cancelled():
                    sender.exception()  # seen here (raised above when it mattered)
            if reusable:
                self.pool.release(conn)
            else:
                conn.abort()

    def proxy_auth_error(self) -> UpstreamError:
        route = self.upstream.proxy
        assert route is not None
        sent = (
            "the credentials from the proxy URL were rejected"
            if route.credentials
            else "no credentials were sent; put them in the proxy URL as http://USER:PASSWORD@HOST:PORT"
        )
        return UpstreamError(
            f"the proxy {route.display} (from {route.source}) requires proxy authentication "
            f"(407 Proxy Authentication Required): {sent}",
            "proxy",
        )


class Answer(Protocol):
    """Where an answer's body comes from: an HTTP/1.1 connection or an HTTP/2 stream."""

    def take_buffered_body(self) -> bytes: ...
    async def read_body(self, limit: int = 0) -> bytes: ...


def send_whole(request: Request, conn: Answer, head: ResponseHead) -> int:
    """An answer that arrived whole: head and body to the client in one write. Returns
    the body's size (what a HEAD answer would have had: its body is not sent)."""
    lines, length, has_date = response_lines_raw(head.raw)
    body = conn.take_buffered_body()
    request.protocol.send_complete(request, head.status, lines, body, length=length, has_date=has_date)
    return len(body)


async def stream_answer(request: Request, conn: Answer, head: ResponseHead, close: bool = False) -> int | None:
    """Relay an answer chunk by chunk as it comes: how many body bytes, or None if the
    upstream failed midway. ``close``: end the client's connection after it."""
    lines, length, has_date = response_lines_raw(head.raw)
    client = request.protocol
    client.send_head(request, head.status, lines, length=length, has_date=has_date, close=close)
    record = record_of(request)
    sent = 0
    try:
        if record is not None:
            record.status = head.status  # the client may leave before the end: it got this
        while chunk := await conn.read_body(STREAM_PIECE):
            client.send_body(chunk)
            sent += len(chunk)
            if client.write_paused:
                await client.drain()
    except UpstreamError as exc:
        # The head is out: a Status can no longer be sent. Cut the client's
        # connection so it sees a truncated response, never a complete one.
        log_throttled("proxying:" + exc.message, logging.ERROR, "Error while proxying request: %s", exc.message)
        if exc.cause is not None:
            tally.upstream_error(exc.cause)
        if request.transport is not None:
            request.transport.abort()
        return None
    finally:
        if record is not None:
            record.bytes_out = sent
    client.end_body()
    return sent


async def _small_body(request: Request, chunked: bool) -> bytes | None:
    length = request.content_length
    if chunked or length is None or length > _REPLAY_LIMIT:
        return None
    _expect_continue(request)
    body = await request.read()
    if request.content.broken:
        raise BrokenBody("the request body broke off")  # before anything went upstream
    return body


def _expect_continue(request: Request) -> None:
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
    """Stream the request body; a body that breaks off (client EOF or reset, a chunk that
    cannot be parsed) aborts the upstream connection without its last chunk or before
    its Content-Length: the API server must never see a complete request that the
    client did not complete."""
    _expect_continue(request)
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
    if content.broken:
        conn.abort()
        raise BrokenBody("the request body broke off")
    if chunked:
        conn.write(b"0\r\n\r\n")
