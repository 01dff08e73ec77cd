"""Request bodies are all or nothing: through the real kproxy process, a body that
breaks off (malformed chunk framing, client EOF, client reset) never reaches the API
server as a complete request. The upstream is :class:`RecordingUpstream`, which parses
what it receives with h11 and records only requests it sees complete."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.recording_upstream import RecordingUpstream

CHUNKED_HEAD = (
    b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
)
LENGTH_HEAD = (
    b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
)
FIRST = b"a\r\nbbbbbbbbbb\r\n"  # a good first chunk, forwarded before the body breaks


@pytest.fixture
async def kp(recorder: RecordingUpstream, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--port", "0", "--server", recorder.url)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """What kproxy answers until it closes (guarded: a hang fails the test)."""
    try:
        return await asyncio.wait_for(reader.read(), 15)
    except ConnectionResetError:
        return b""


def reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_complete_bodies_arrive_exactly(kp: KproxyProcess, recorder: RecordingUpstream) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(CHUNKED_HEAD + FIRST + b"5;ext=1\r\nccccc\r\n0\r\nX-Trailer: t\r\n\r\n")
    writer.write(LENGTH_HEAD.replace(b"Content-Length: 100", b"Connection: close\r\nContent-Length: 3") + b"xyz")
    answers = await read_all(reader)
    writer.close()
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    await recorder.settled()
    assert [s.body for s in recorder.seen] == [b"bbbbbbbbbbccccc", b"xyz"]
    assert recorder.broken == 0


# (what the client sends after the first good chunk, whether kproxy answers 400)
MALFORMED = {
    "chunk-size-overflow": b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "0x5": b"0x5\r\nhello\r\n0\r\n\r\n",
    "data-longer-than-its-size": b"3\r\nhello\r\n0\r\n\r\n",
    "bad-chunk-terminator": b"5\r\nhelloXX0\r\n\r\n",
    "bad-last-chunk": b"0\r\nBad Trailer\r\n\r\n",
}


@pytest.mark.parametrize("streamed", [True, False], ids=["after-forwarding-began", "in-one-write"])
@pytest.mark.parametrize("rest", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_chunked_body_is_never_completed_upstream(
    kp: KproxyProcess, recorder: RecordingUpstream, rest: bytes, streamed: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    if streamed:
        writer.write(CHUNKED_HEAD + FIRST)
        await recorder.received(b"bbbbbbbbbb")  # the body is being streamed
        writer.write(rest)
    else:
        writer.write(CHUNKED_HEAD + FIRST + rest)
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.count(b"HTTP/1.1") == 1  # one answer: no 502 for the aborted upstream first
    await recorder.settled()
    assert recorder.seen == []  # the API server never saw the request complete
    if streamed:
        assert recorder.broken == 1


@pytest.mark.parametrize("how", ["eof", "reset"])
@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_client_that_leaves_mid_body_completes_nothing(
    kp: KproxyProcess, recorder: RecordingUpstream, framing: str, how: str
) -> None:
    # The example: a POST whose 100 bytes were announced, 10 sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(CHUNKED_HEAD + FIRST if framing == "chunked" else LENGTH_HEAD + b"bbbbbbbbbb")
    await recorder.received(b"bbbbbbbbbb")  # the body is being streamed
    if how == "eof":
        writer.write_eof()
        assert await read_all(reader) == b""  # it left: nothing to answer
        writer.close()
    else:
        reset(writer)
    await recorder.settled()
    assert recorder.seen == [] and recorder.broken == 1
    # kproxy goes on serving.
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(LENGTH_HEAD.replace(b"Content-Length: 100", b"Connection: close\r\nContent-Length: 2") + b"ok")
    assert (await read_all(reader)).startswith(b"HTTP/1.1 200 OK")
    writer.close()
    await recorder.settled()
    assert [s.body for s in recorder.seen] == [b"ok"]
