"""Forward one client request to the API server and stream the answer back.

In: an accepted aiohttp request, the upstream path (encoding kept) and the
:class:`~kproxy.options.Upstream`. Out: the client's response, streamed chunk by chunk
in both directions with backpressure; ``Upgrade`` requests become a raw byte splice.

Header rules follow ``httputil.ReverseProxy`` as kubectl uses it (reference §6.2, §8):
hop-by-hop headers are dropped both ways, ``Host`` becomes the server's, credentials
are added only where the client sent none, ``X-Forwarded-For`` gets the client
address appended. Unlike kubectl, nothing is decompressed and no ``Accept-Encoding``
is added: encodings pass through as the client asked.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import CIMultiDict

from .errors import UpstreamError
from .options import Upstream
from .pool import ConnectionPool, UpstreamConnection

__all__ = ["Relay", "is_upgrade"]

log = logging.getLogger("kproxy")

# RFC 9110 §7.6.1 plus the legacy names Go's ReverseProxy removes.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded, not even on an upgrade, where everything else passes as sent
# (the client's Connection/Upgrade/Sec-WebSocket-* headers must reach the server).
_UPGRADE_DROP = frozenset({b"proxy-authorization", b"proxy-connection", b"keep-alive"})

_canonical_cache: dict[bytes, bytes] = {}


def canonical_name(name: bytes) -> bytes:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-dup`` → ``X-Dup``."""
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    if any(c in b" :\t" or c > 126 for c in name):
        canon = name  # Go leaves names with invalid characters alone
    else:
        canon = b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))
    if len(_canonical_cache) < 1024:  # bounded: names are client-chosen
        _canonical_cache[name] = canon
    return canon


def is_upgrade(raw_headers: tuple[tuple[bytes, bytes], ...]) -> bool:
    # kubectl's test is a case-insensitive substring "upgrade" in any Connection value
    # (reference §8), so "keep-alive, Upgrade" qualifies.
    for name, value in raw_headers:
        if len(name) == 10 and name.lower() == b"connection" and b"upgrade" in value.lower():
            return True
    return False


def _connection_tokens(raw_headers: tuple[tuple[bytes, bytes], ...]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


class Relay:
    def __init__(self, upstream: Upstream, pool: ConnectionPool) -> None:
        self._up = upstream
        self._pool = pool
        self._head_prefix = b"Host: " + upstream.host_header + b"\r\n"

    # -- request head -------------------------------------------------------------------

    def _request_head(
        self, request: web.BaseRequest, target: bytes, upgrade: bool
    ) -> tuple[bytes, bool, bool]:
        """The upstream request head; also (has_body, chunked)."""
        up = self._up
        raw = request.raw_headers
        hop = _UPGRADE_DROP if upgrade else _HOP_BY_HOP
        listed = _connection_tokens(raw) if not upgrade else frozenset()
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
            parts.append(up.auth_header)
        if not has_impersonation:
            # client-go skips its impersonation when the request already has any.
            parts.append(up.impersonation_headers)
        if not has_agent:
            parts.append(up.user_agent_header)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if isinstance(peer, tuple) and peer:
            client = peer[0].encode()
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

    async def forward(self, request: web.BaseRequest, target: bytes) -> web.StreamResponse:
        head_bytes, has_body, chunked = self._request_head(request, target, upgrade=False)
        no_body = request.method == "HEAD"
        conn = await self._pool.acquire()
        reusable = False
        sender: asyncio.Task[None] | None = None
        try:
            conn.start(no_body)
            conn.write(head_bytes)
            if has_body:
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
            headers = _response_headers(head.headers)
            resp: web.StreamResponse
            if conn.complete:
                # The whole answer is here already: head and body leave in one write.
                resp = web.Response(status=head.status, headers=headers, body=conn.take_buffered_body())
            else:
                resp = web.StreamResponse(status=head.status, headers=headers)
                await resp.prepare(request)
                try:
                    while chunk := await conn.read_body():
                        await resp.write(chunk)
                except UpstreamError as exc:
                    # The head is out: a Status can no longer be sent. Cut the client's
                    # connection so it sees a truncated response, never a complete one.
                    log.error("Error while proxying request: %s", exc.message)
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await resp.write_eof()
            if sender is not None:
                if not sender.done():
                    # The server answered before reading the whole body (e.g. 401): the
                    # connection's framing is now unknown, so it is not reused.
                    sender.cancel()
                    return resp
                sender.result()
            reusable = head.keep_alive
            return resp
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if reusable:
                self._pool.release(conn, True)
            else:
                conn.abort()

    # -- upgrades -------------------------------------------------------------------------

    async def upgrade(self, request: web.BaseRequest, target: bytes) -> web.StreamResponse:
        head_bytes, _, _ = self._request_head(request, target, upgrade=True)
        protocol = request.protocol
        feeder = _ClientFeeder(request)
        # Take the client's bytes from now on, before aiohttp's parser (which knows only
        # websocket upgrades) can mistake SPDY frames for new requests.
        protocol.set_parser(feeder)  # type: ignore[arg-type]
        protocol.keep_alive(False)
        conn = await self._pool.connect()
        try:
            conn.start(False)
            conn.write(head_bytes)
            head = await conn.response_head()
            if head.status != 101:
                if head.status < 400:
                    raise UpstreamError(f"invalid upgrade response: status code {head.status}")
                # An error from the API server (404 pod not found, 403...) is relayed.
                resp = web.StreamResponse(status=head.status, headers=_response_headers(head.headers))
                resp.force_close()
                await resp.prepare(request)
                while chunk := await conn.read_body():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            resp = web.StreamResponse(status=101, headers=_raw_headers(head.headers))
            resp.force_close()
            tail = conn.switch_to_raw()
            await resp.prepare(request)
            feeder.attach(conn)
            if tail:
                await resp.write(tail)
            while chunk := await conn.read_body():
                await resp.write(chunk)
            return resp
        finally:
            feeder.detach()
            conn.abort()


class _ClientFeeder:
    """Receives the client's bytes after an upgrade (aiohttp's ``set_parser`` hook)."""

    def __init__(self, request: web.BaseRequest) -> None:
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

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        conn = self._conn
        if conn is None:
            self._pending.append(data)
        elif not conn.closed:
            conn.write(data)
            self._throttle()
        return False, b""

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


def _replayable(request: web.BaseRequest, has_body: bool) -> bool:
    # net/http Request.isReplayable
    if has_body:
        return False
    headers = request.headers
    return request.method in _IDEMPOTENT or "Idempotency-Key" in headers or "X-Idempotency-Key" in headers


async def _send_body(request: web.BaseRequest, conn: UpstreamConnection, chunked: bool) -> None:
    if request.headers.get("Expect", "").lower() == "100-continue":
        # We start reading at once, so tell the client to go ahead (RFC 9110 §10.1.1)
        # rather than make it wait out its timeout.
        if request.transport is not None:
            request.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
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


def _response_headers(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    listed: frozenset[bytes] = frozenset()
    pairs = []
    for name, value in raw:
        lname = name.lower()
        if lname in _HOP_BY_HOP:
            if lname == b"connection":
                listed |= _connection_tokens(((name, value),))
            continue
        pairs.append((lname, name, value))
    return CIMultiDict(
        (name.decode("latin-1"), value.decode("latin-1"))
        for lname, name, value in pairs
        if lname not in listed
    )


def _raw_headers(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    return CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)
