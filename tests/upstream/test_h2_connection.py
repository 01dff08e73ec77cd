"""H2Connection and H2Stream without sockets: kproxy's client side against an h2 server
connection in the test, bytes passed by hand, and a fake clock for the health check.

``tests/integration/test_http2.py`` checks the same lane end to end through the real
process; here each rule of Go's client is pinned exactly: settings and windows, window
space handed back only as the relay consumes, GOAWAY, PING, stream limits, resets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest

from kproxy.errors import UpstreamError
from kproxy.upstream import h2_connection as module
from kproxy.upstream.h2_adapter import CONNECTION_WINDOW, STREAM_WINDOW
from kproxy.upstream.h2_connection import H2Connection, StreamRefused
from tests.doubles import MockTransport

REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"h"), (b":path", b"/api?watch=1")]


class FakeSSL:
    def selected_alpn_protocol(self) -> str:
        return "h2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Pair:
    """kproxy's H2Connection and an h2 server, wired by hand."""

    def __init__(self, max_streams: int | None = None) -> None:
        self.transport = MockTransport(ssl_object=FakeSSL())
        self.client = H2Connection()
        self.client.connection_made(self.transport)
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.server = h2.connection.H2Connection(config=config)
        if max_streams is not None:
            self.server.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
            )
        self.server.initiate_connection()
        self.events: list[Any] = []
        self.to_server()

    def to_server(self) -> list[Any]:
        events = self.server.receive_data(self.transport.take())
        self.events += events
        return events

    def to_client(self) -> None:
        self.client.data_received(self.server.data_to_send())

    def answer(self, stream_id: int, body: bytes = b"", end: bool = False) -> None:
        self.server.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/json")])
        if body:
            self.server.send_data(stream_id, body)
        if end:
            self.server.end_stream(stream_id)
        self.to_client()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(module, "time", fake)
    return fake


async def test_settings_are_go_clients(clock: Clock) -> None:
    pair = Pair(max_streams=250)
    changed = next(e for e in pair.events if isinstance(e, h2.events.RemoteSettingsChanged))
    codes = h2.settings.SettingCodes
    assert changed.changed_settings[codes.INITIAL_WINDOW_SIZE].new_value == STREAM_WINDOW
    assert changed.changed_settings[codes.ENABLE_PUSH].new_value == 0
    assert pair.server.outbound_flow_control_window == CONNECTION_WINDOW
    assert pair.client.available == 100  # assumed until the server's SETTINGS arrive
    pair.to_client()
    assert pair.client.available == 250  # then the server's word, more or less


async def test_the_servers_stream_limit_is_respected(clock: Clock) -> None:
    pair = Pair(max_streams=2)
    pair.to_client()
    assert pair.client.available == 2
    pair.client.open(REQUEST)
    pair.client.open(REQUEST)
    assert pair.client.available == 0
    with pytest.raises(StreamRefused):
        pair.client.open(REQUEST)


async def test_window_space_goes_back_only_as_the_relay_takes_the_data(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.to_server()
    body = b"x" * 16_000
    pair.answer(stream.stream_id, body)
    for _ in range(150):  # 2.4 MB: more than half the stream window
        pair.server.send_data(stream.stream_id, body)
        pair.to_client()
    pair.to_server()
    before = pair.server.local_flow_control_window(stream.stream_id)
    assert before == STREAM_WINDOW - 151 * 16_000  # nothing handed back: the client has not read
    assert (await stream.response_head()).status == 200
    assert len(stream.take_buffered_body()) == 151 * 16_000
    pair.to_server()
    assert pair.server.local_flow_control_window(stream.stream_id) == STREAM_WINDOW


async def test_a_stream_let_go_early_is_cancelled(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.to_server()
    pair.answer(stream.stream_id, b"{}")
    stream.close()  # the client went away
    (reset,) = [e for e in pair.to_server() if isinstance(e, h2.events.StreamReset)]
    assert reset.error_code == h2.errors.ErrorCodes.CANCEL and pair.client.streams == {}


async def test_a_complete_answer_is_not_reset(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.to_server()
    pair.answer(stream.stream_id, b"{}", end=True)
    assert stream.complete and stream.take_buffered_body() == b"{}"
    stream.close()
    assert not [e for e in pair.to_server() if isinstance(e, h2.events.StreamReset)]


async def test_goaway_refuses_later_streams_and_lets_earlier_ones_finish(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    first = pair.client.open(REQUEST)
    second = pair.client.open(REQUEST)
    pair.to_server()
    pair.answer(first.stream_id, b"a")
    pair.server.close_connection(last_stream_id=first.stream_id)
    pair.to_client()
    assert pair.client.going_away and pair.client.available == 0
    with pytest.raises(StreamRefused):
        await second.response_head()
    second.close()
    # h2 would call the connection closed; frames for the first stream still arrive.
    pair.server.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
    pair.server.send_data(first.stream_id, b"b", end_stream=True)
    pair.to_client()
    assert first.complete and first.take_buffered_body() == b"ab"
    assert not pair.transport.closed
    first.close()
    assert pair.transport.closed  # its last stream ended: the connection goes


async def test_refused_stream_is_retryable_other_resets_are_not(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    refused = pair.client.open(REQUEST)
    reset = pair.client.open(REQUEST)
    pair.to_server()
    pair.server.reset_stream(refused.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
    pair.server.reset_stream(reset.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
    pair.to_client()
    with pytest.raises(StreamRefused):
        await refused.response_head()
    with pytest.raises(UpstreamError, match="reset the HTTP/2 stream \\(INTERNAL_ERROR\\)") as info:
        await reset.response_head()
    assert not isinstance(info.value, StreamRefused)


async def test_a_protocol_error_fails_this_connections_streams(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.client.data_received(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on stream 0
    assert pair.client.closed and pair.transport.aborted
    with pytest.raises(UpstreamError, match="protocol error"):
        await stream.response_head()


async def test_ping_after_read_idle_and_close_without_an_answer(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.to_server()
    clock.now += module.READ_IDLE
    pair.client._check()
    assert any(isinstance(e, h2.events.PingReceived) for e in pair.to_server())
    clock.now += module.PING_TIMEOUT
    pair.client._check()  # no frame since: the server is gone
    assert pair.client.closed and pair.transport.aborted
    with pytest.raises(UpstreamError, match="did not answer a PING within 15s"):
        await stream.response_head()


async def test_an_answered_ping_keeps_the_connection(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    pair.client.open(REQUEST)
    clock.now += module.READ_IDLE
    pair.client._check()
    pair.to_server()  # h2 answers the PING by itself
    clock.now += 1
    pair.to_client()
    clock.now += module.PING_TIMEOUT
    pair.client._check()
    assert not pair.client.closed


async def test_an_idle_connection_closes_after_the_idle_timeout(clock: Clock) -> None:
    pair = Pair()
    pair.to_client()
    stream = pair.client.open(REQUEST)
    pair.to_server()
    pair.answer(stream.stream_id, b"", end=True)
    stream.close()
    clock.now += module.IDLE_TIMEOUT
    pair.to_server()
    pair.to_client()  # a frame just came: no PING needed, but nothing runs on it either
    pair.client._check()
    assert pair.client.closed and pair.transport.closed


async def test_a_server_choosing_http1_gets_no_http2_bytes() -> None:
    class HTTP1:
        def selected_alpn_protocol(self) -> str:
            return "http/1.1"

    transport = MockTransport(ssl_object=HTTP1())
    conn = H2Connection()
    conn.connection_made(transport)
    assert conn.negotiated == "http/1.1" and conn.closed and transport.data == b""
    await asyncio.sleep(0)


async def test_a_malformed_answer_fails_its_stream_only(clock: Clock) -> None:
    pair = Pair()
    pair.server.config.validate_outbound_headers = False  # a server that sends what it should not
    pair.to_client()
    evil = pair.client.open(REQUEST)
    fine = pair.client.open(REQUEST)
    pair.to_server()
    pair.server.send_headers(evil.stream_id, [(b":status", b"200"), (b"x-evil", b"a\r\nSet-Cookie: s=1")])
    pair.answer(fine.stream_id, b"{}", end=True)
    with pytest.raises(UpstreamError, match="invalid header field b'x-evil'"):
        await evil.response_head()
    resets = [e for e in pair.to_server() if isinstance(e, h2.events.StreamReset)]
    assert [r.stream_id for r in resets] == [evil.stream_id]
    assert (await fine.response_head()).status == 200 and not pair.client.closed


async def test_churned_streams_leave_bounded_memory_and_late_data_is_still_ignored(clock: Clock) -> None:
    # Watches come and go on one long-lived connection: what h2 remembers of closed
    # streams stays bounded, and DATA still in flight to a stream just cancelled is
    # dropped without harm to the connection.
    from hyperframe.frame import DataFrame

    pair = Pair()
    pair.to_client()
    for _ in range(3000):
        stream = pair.client.open(REQUEST)
        pair.to_server()
        pair.answer(stream.stream_id, b"{}")
        stream.close()  # the watch's client went away: RST_STREAM
        pair.to_server()
    remembered = pair.client._adapter._h2._closed_streams
    assert 0 < len(remembered) <= 1024
    late = DataFrame(stream.stream_id, data=b"sent before the server saw the reset")
    pair.client.data_received(late.serialize())
    assert not pair.client.closed and pair.client.streams == {}
    after = pair.client.open(REQUEST)
    pair.to_server()
    pair.answer(after.stream_id, b"{}", end=True)
    assert after.complete and after.take_buffered_body() == b"{}"
