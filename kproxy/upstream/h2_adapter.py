"""The one place that speaks to the ``h2`` library: the client side of an HTTP/2 connection.

In: bytes from the API server, and the connection's requests (open a stream, hand back
window space, reset, ping, go away). Out: bytes to send (:meth:`H2Adapter.data_to_send`)
and calls on a :class:`Sink` — a response head, data, a stream's end or reset, the
server's settings (its stream limit), its ``GOAWAY``, a ping's answer. h2 is sans-IO; sockets and
timers are :mod:`kproxy.upstream.h2_connection`'s.

Settings are Go's HTTP/2 client's as client-go uses them (``golang.org/x/net/http2``
``transport.go``; ``docs/upstream-connections.md`` §2): no server push, a 4 MiB window
per stream and 1 GiB for the connection, a 10 MiB limit on a response's header list.
h2's pitfalls and what is done about them:

* windows are 65,535 bytes until told otherwise: the settings above are in force from
  the first frame, and window updates leave only when :meth:`data_to_send` is flushed,
  which the connection does after every call;
* until the server's ``SETTINGS`` arrive h2 allows any number of streams: the
  connection assumes 100, as Go does, and counts its own streams (h2 counts by walking
  all of them);
* its header validation is slow (pure Python, several passes per field): the answer's
  fields are checked once, where they become HTTP/1.1 lines;
* a received ``GOAWAY`` moves h2's whole connection to CLOSED, after which frames for
  the streams the server promised to finish are protocol errors (h2 issue 1199): the
  connection is kept open here, and no new stream is opened on it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from kproxy.errors import UpstreamError

__all__ = [
    "ASSUMED_MAX_STREAMS",
    "CONNECTION_WINDOW",
    "REFUSED_STREAM",
    "STREAM_WINDOW",
    "H2Adapter",
    "H2ProtocolError",
    "Sink",
    "error_name",
]

CONNECTION_WINDOW = 1 << 30  # Go: transportDefaultConnFlow
STREAM_WINDOW = 4 << 20  # Go: transportDefaultStreamFlow
MAX_HEADER_LIST = 10 << 20  # Go: defaultMaxHeaderListSize
ASSUMED_MAX_STREAMS = 100  # Go: initialMaxConcurrentStreams, until SETTINGS arrive
REFUSED_STREAM = int(h2.errors.ErrorCodes.REFUSED_STREAM)
_DEFAULT_WINDOW = 65535

Fields = list[tuple[bytes, bytes]]


class H2ProtocolError(UpstreamError):
    """The API server broke the HTTP/2 protocol; the connection cannot go on."""


class Sink(Protocol):
    def on_head(self, stream_id: int, fields: Fields) -> None: ...
    def on_data(self, stream_id: int, data: bytes, flow: int) -> None: ...
    def on_end(self, stream_id: int) -> None: ...
    def on_reset(self, stream_id: int, code: int) -> None: ...
    def on_goaway(self, last_stream_id: int, code: int) -> None: ...
    def on_settings(self, max_streams: int | None) -> None: ...
    def on_ping_ack(self) -> None: ...


def error_name(code: int) -> str:
    """``REFUSED_STREAM`` for 7; the number for codes RFC 9113 §7 does not name."""
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)


class _Connection(h2.connection.H2Connection):
    # h2 remembers how each closed stream ended, for frames still in flight to it (DATA
    # after our RST_STREAM), up to 65,536 streams: a long-lived connection that watches
    # come and go on grows by ~100 bytes per closed watch until then, ~6 MiB per
    # connection. A client with at most 100 streams open needs far fewer: frames for a
    # stream arrive within moments of its end, not a thousand streams later.
    MAX_CLOSED_STREAMS = 1024

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        # h2 closes the whole connection on GOAWAY; RFC 9113 §6.8 lets the streams up
        # to last-stream-id finish, so it stays open (the caller opens no new stream).
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result


class H2Adapter:
    """One HTTP/2 client connection's protocol state."""

    __slots__ = ("_h2", "_sink")

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        # h2's header validation, in and out, doubled the cost of an exchange: our fields
        # come from heads llhttp parsed, and the answer's are checked where they become
        # HTTP/1.1 lines (kproxy.policy.h2_fields.response_head). Outbound normalisation
        # stays: it keeps Authorization out of the HPACK table.
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_inbound_headers=False, validate_outbound_headers=False
        )
        conn = _Connection(config=config)
        codes = h2.settings.SettingCodes
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                codes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        self._h2 = conn

    def initiate(self) -> None:
        """The connection preface, our settings and the connection window, queued."""
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)

    def data_to_send(self) -> bytes:
        return self._h2.data_to_send()

    def open_stream(self, fields: Fields) -> int:
        """A new stream carrying a request without a body; its id. Raises H2ProtocolError
        when h2 refuses (the server's limit reached, the connection closed)."""
        conn = self._h2
        stream_id = conn.get_next_available_stream_id()
        try:
            conn.send_headers(stream_id, fields, end_stream=True)
        except h2.exceptions.H2Error as exc:
            raise H2ProtocolError(f"cannot open an HTTP/2 stream to the API server: {exc}") from exc
        return stream_id

    def acknowledge(self, stream_id: int, flow: int) -> None:
        """``flow`` bytes of ``stream_id`` were consumed: the server may send as many more."""
        if flow:
            self._h2.acknowledge_received_data(flow, stream_id)

    def reset(self, stream_id: int, code: int = int(h2.errors.ErrorCodes.CANCEL)) -> None:
        try:
            self._h2.reset_stream(stream_id, code)
        except h2.exceptions.H2Error:
            pass  # already closed on both sides: nothing to cancel

    def ping(self) -> None:
        self._h2.ping(os.urandom(8))

    def go_away(self) -> None:
        try:
            self._h2.close_connection()
        except h2.exceptions.H2Error:
            pass

    def feed(self, data: bytes) -> None:
        """Bytes from the server; the sink hears about what they carry."""
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.H2Error as exc:
            raise H2ProtocolError(f"HTTP/2 protocol error from the API server: {exc}") from exc
        sink = self._sink
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                sink.on_data(event.stream_id or 0, event.data or b"", event.flow_controlled_length or 0)
            elif isinstance(event, h2.events.ResponseReceived):
                sink.on_head(event.stream_id or 0, list(event.headers or ()))
            elif isinstance(event, h2.events.StreamEnded):
                sink.on_end(event.stream_id or 0)
            elif isinstance(event, h2.events.StreamReset):
                sink.on_reset(event.stream_id or 0, int(event.error_code or 0))
            elif isinstance(event, h2.events.ConnectionTerminated):
                sink.on_goaway(event.last_stream_id or 0, int(event.error_code or 0))
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                sink.on_settings(changed.new_value if changed is not None else None)
            elif isinstance(event, h2.events.PingAckReceived):
                sink.on_ping_ack()
            # Informational (1xx) heads, trailers, window updates, priority: nothing to do.
