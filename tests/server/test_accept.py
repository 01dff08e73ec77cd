"""kproxy.server.accept: accepting, and pausing when descriptors run out. A real
listening socket on loopback; the exhaustion is made by replacing ``accept``."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from kproxy.server.accept import Acceptor


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


@pytest.fixture
async def listening() -> AsyncIterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


async def echo_once(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_accepted_connections_are_served(listening: socket.socket) -> None:
    acceptor = Acceptor(asyncio.get_running_loop(), listening, Echo)
    acceptor.start()
    port = listening.getsockname()[1]
    assert await asyncio.gather(*(echo_once(port, b"%d" % i) for i in range(20))) == [b"%d" % i for i in range(20)]
    acceptor.close()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
async def test_out_of_descriptors_pauses_accepting_then_it_resumes(
    listening: socket.socket, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    acceptor = Acceptor(asyncio.get_running_loop(), listening, Echo)
    real = listening.accept
    failures = [0]

    def exhausted() -> tuple[socket.socket, object]:
        if failures[0] < 3:
            failures[0] += 1
            raise OSError(code, "Too many open files")
        return real()

    acceptor._accept = exhausted
    acceptor.start()
    port = listening.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="kproxy"):
        # The client waits in the backlog meanwhile; each pause ends on its own.
        assert await echo_once(port) == b"ping"
    assert failures[0] == 3 and acceptor.paused == 3
    lines = [r.getMessage() for r in caplog.records if "not accepting new connections" in r.getMessage()]
    assert len(lines) == 1  # one line per cause per interval, however many pauses
    assert "accepting a connection failed: Too many open files" in lines[0]
    acceptor.close()


async def test_a_pause_from_elsewhere_and_close(listening: socket.socket) -> None:
    acceptor = Acceptor(asyncio.get_running_loop(), listening, Echo)
    acceptor.start()
    acceptor.pause("connecting to the API server failed: Too many open files", seconds=0.2)
    acceptor.pause("again", seconds=60)  # a pause in progress is not extended
    assert await echo_once(listening.getsockname()[1]) == b"ping"
    assert acceptor.paused == 1
    acceptor.close()
    acceptor.pause("after close")
    assert acceptor.paused == 1


async def test_clients_that_gave_up_are_skipped(listening: socket.socket) -> None:
    acceptor = Acceptor(asyncio.get_running_loop(), listening, Echo)
    real = listening.accept
    calls = [0]

    def aborted() -> tuple[socket.socket, object]:
        calls[0] += 1
        if calls[0] == 1:
            raise OSError(errno.ECONNABORTED, "Software caused connection abort")
        return real()

    acceptor._accept = aborted
    acceptor.start()
    assert await echo_once(listening.getsockname()[1]) == b"ping"
    assert acceptor.paused == 0
    acceptor.close()
