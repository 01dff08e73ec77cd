"""HTTP/2 in front of the fake API server, as kube-apiserver offers it.

In: the fake's aiohttp ``web.Server`` (its request handling), a listening socket and the
server's TLS context (client certificates verified if given). Out: a listener that
offers ``h2`` and ``http/1.1`` by ALPN. A connection that chose ``http/1.1`` is handed to
aiohttp as it is; on an HTTP/2 connection each stream becomes one HTTP/1.1 exchange
with a handler of the same ``web.Server``, over an in-memory transport that answers
``get_extra_info`` from the TLS connection (so the client certificate still
authenticates), and its answer goes back as HTTP/2 ``HEADERS`` and ``DATA`` frames
within the client's flow-control windows. A client's ``RST_STREAM`` is the handler's
connection lost: a watch ends, as in kube-apiserver.

Knobs for tests: ``max_streams`` (``SETTINGS_MAX_CONCURRENT_STREAMS``; kube-apiserver
says 100), :meth:`H2Front.goaway` (streams up to the last one may finish, later ones
are refused), ``goaway_storm`` (every new stream is answered with a GOAWAY refusing it),
:meth:`H2Front.reset_streams` and :meth:`H2Front.break_protocol`, and
``connections`` / ``streams_opened`` to count what clients did. Requests arrive at the
fake with lowercase header names, as over HTTP/2 they do.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import httptools

__all__ = ["H2Front"]

_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})
_HIGH_WATER = 256 * 1024

HandlerFactory = Callable[[], asyncio.Protocol]


class H2Front:
    """The fake's listener, speaking HTTP/2 and HTTP/1.1 (see the module docstring)."""

    def __init__(self, handlers: HandlerFactory, *, max_streams: int = 100) -> None:
        self._handlers = handlers
        self.max_streams = max_streams
        self._server: asyncio.AbstractServer | None = None
        self._live: set[_H2Connection] = set()
        self.connections = 0  # HTTP/2 connections accepted
        self.http1_connections = 0
        self.streams_opened = 0
        self.goaway_storm = False  # answer every new stream with GOAWAY (last-stream-id 0)

    async def start(self, sock: Any, ssl_context: ssl.SSLContext) -> None:
        ssl_context.set_alpn_protocols(["h2", "http/1.1"])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Accepted(self), sock=sock, ssl=ssl_context)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._live):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def stalled_streams(self) -> int:
        """Streams whose answer waits for the client's flow-control window to open."""
        return sum(1 for conn in self._live for ex in conn.exchanges.values() if ex.pending)

    def goaway(self, error_code: int = 0, last_stream_id: int | None = None) -> None:
        """``GOAWAY`` on every HTTP/2 connection: streams up to ``last_stream_id`` (default:
        the last one opened) may finish; later ones are refused; none may start."""
        for conn in list(self._live):
            conn.goaway(error_code, last_stream_id)

    def reset_streams(self, error_code: int = int(h2.errors.ErrorCodes.INTERNAL_ERROR)) -> int:
        """``RST_STREAM`` on every open stream; how many."""
        return sum(conn.reset_all(error_code) for conn in list(self._live))

    def break_protocol(self) -> None:
        """Send each HTTP/2 client a frame that breaks the protocol (a DATA frame on stream 0)."""
        for conn in list(self._live):
            conn.send_raw(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")


class _Accepted(asyncio.Protocol):
    """The first protocol of an accepted TLS connection: hands it on by its ALPN protocol."""

    def __init__(self, front: H2Front) -> None:
        self._front = front

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        obj = transport.get_extra_info("ssl_object")
        protocol = obj.selected_alpn_protocol() if obj is not None else None
        next_protocol: asyncio.Protocol
        if protocol == "h2":
            self._front.connections += 1
            next_protocol = _H2Connection(self._front)
        else:
            self._front.http1_connections += 1
            next_protocol = self._front._handlers()
        transport.set_protocol(next_protocol)
        next_protocol.connection_made(transport)


class _H2Connection(asyncio.Protocol):
    def __init__(self, front: H2Front) -> None:
        self.front = front
        config = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=True)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: front.max_streams}
        )
        self.transport: asyncio.Transport | None = None
        self.exchanges: dict[int, _Exchange] = {}
        self.last_stream = 0
        self.going_away = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.front._live.add(self)
        self.h2.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.abort()
            return
        for event in events:
            self._event(event)
        self.flush()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            sid = event.stream_id or 0
            if self.going_away:
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            if self.front.goaway_storm:
                self.goaway(0, 0)
                return
            self.last_stream = sid
            self.front.streams_opened += 1
            ended = event.stream_ended is not None
            self.exchanges[sid] = _Exchange(self, sid, list(event.headers or ()), ended)
        elif isinstance(event, h2.events.DataReceived):
            sid = event.stream_id or 0
            self.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            exchange = self.exchanges.get(sid)
            if exchange is not None:
                exchange.body(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded):
            exchange = self.exchanges.get(event.stream_id or 0)
            if exchange is not None:
                exchange.body_end()
        elif isinstance(event, h2.events.StreamReset):
            exchange = self.exchanges.pop(event.stream_id or 0, None)
            if exchange is not None:
                exchange.client_gone()
        elif isinstance(event, h2.events.WindowUpdated):
            for sid, exchange in list(self.exchanges.items()):
                if event.stream_id in (0, sid):
                    exchange.send_pending()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.abort()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_raw(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def goaway(self, error_code: int, last_stream_id: int | None) -> None:
        self.going_away = True
        last = self.last_stream if last_stream_id is None else last_stream_id
        self.h2.close_connection(error_code, last_stream_id=last)
        # h2 would refuse every later frame; streams up to ``last`` may still finish.
        self.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
        for sid in [sid for sid in self.exchanges if sid > last]:
            self.exchanges.pop(sid).client_gone()
        self.flush()
        if not self.exchanges and self.transport is not None:
            self.transport.close()

    def reset_all(self, error_code: int) -> int:
        count = 0
        for sid, exchange in list(self.exchanges.items()):
            self.exchanges.pop(sid)
            exchange.client_gone()
            self.h2.reset_stream(sid, error_code)
            count += 1
        self.flush()
        return count

    def finished(self, sid: int) -> None:
        self.exchanges.pop(sid, None)
        if self.going_away and not self.exchanges and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.front._live.discard(self)
        for exchange in list(self.exchanges.values()):
            exchange.client_gone()
        self.exchanges.clear()


class _Exchange(asyncio.Transport):
    """One stream, as an HTTP/1.1 connection to an aiohttp request handler (its transport)."""

    def __init__(self, conn: _H2Connection, sid: int, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        super().__init__()
        self.conn = conn
        self.sid = sid
        self.closed = False
        self.complete = False
        self.pending = bytearray()
        self.paused = False
        self.ending = False
        self.parser = httptools.HttpResponseParser(self)
        self.status_fields: list[tuple[bytes, bytes]] = []
        self.handler = conn.front._handlers()
        self.handler.connection_made(self)
        self.chunked = False
        pseudo = {name: value for name, value in fields if name.startswith(b":")}
        lines = [b"%s %s HTTP/1.1\r\n" % (pseudo.get(b":method", b"GET"), pseudo.get(b":path", b"/"))]
        lines.append(b"Host: %s\r\n" % pseudo.get(b":authority", b""))
        names = set()
        for name, value in fields:
            if not name.startswith(b":") and name != b"host":
                names.add(name)
                lines.append(b"%s: %s\r\n" % (name, value))
        if not ended and b"content-length" not in names:
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"Connection: close\r\n\r\n")
        self.handler.data_received(b"".join(lines))

    # -- request body, from the connection ----------------------------------------------

    def body(self, data: bytes) -> None:
        if data and not self.closed:
            self.handler.data_received(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)

    def body_end(self) -> None:
        if self.chunked and not self.closed:
            self.handler.data_received(b"0\r\n\r\n")

    def client_gone(self) -> None:
        if not self.closed:
            self.closed = True
            self.handler.connection_lost(ConnectionResetError("the client reset the HTTP/2 stream"))

    # -- the handler's answer: httptools callbacks --------------------------------------

    def on_status(self, status: bytes) -> None:
        self.status_fields = [(b":status", str(self.parser.get_status_code()).encode())]

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname not in _HOP:
            self.status_fields.append((lname, value))

    def on_headers_complete(self) -> None:
        if not self.closed:
            self.conn.h2.send_headers(self.sid, self.status_fields)
            self.conn.flush()

    def on_body(self, body: bytes) -> None:
        self.pending += body
        self.send_pending()

    def on_message_complete(self) -> None:
        self.ending = True
        self.send_pending()

    def send_pending(self) -> None:
        h2conn = self.conn.h2
        if self.closed and not self.complete:
            return
        while self.pending:
            window = min(h2conn.local_flow_control_window(self.sid), h2conn.max_outbound_frame_size)
            if window <= 0:
                break
            chunk = bytes(self.pending[:window])
            del self.pending[:window]
            h2conn.send_data(self.sid, chunk)
        if self.ending and not self.pending and not self.complete:
            self.complete = True
            h2conn.end_stream(self.sid)
            self.conn.finished(self.sid)
        self.conn.flush()
        if len(self.pending) > _HIGH_WATER and not self.paused:
            self.paused = True
            self.handler.pause_writing()
        elif self.paused and len(self.pending) <= _HIGH_WATER // 4:
            self.paused = False
            self.handler.resume_writing()

    # -- asyncio.Transport, as the handler uses it ---------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            return
        try:
            self.parser.feed_data(bytes(data))
        except httptools.HttpParserError:
            self.abort()
        except h2.exceptions.H2Error:
            self.client_gone()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.complete:
            self.abort_stream()
        asyncio.get_running_loop().call_soon(self.handler.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def abort_stream(self) -> None:
        if not self.complete:
            self.complete = True
            try:
                self.conn.h2.reset_stream(self.sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            except h2.exceptions.H2Error:
                pass
            self.conn.finished(self.sid)
            self.conn.flush()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self.conn.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def pause_reading(self) -> None:
        pass  # request bodies are small here; their window is handed back at once

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self.closed

    def get_write_buffer_size(self) -> int:
        return len(self.pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False
