"""A transport that records what a protocol does to it, for tests without sockets
(uvicorn's MockTransport does the same for its protocols)."""

from __future__ import annotations

import asyncio
from typing import Any


class MockTransport(asyncio.Transport):
    def __init__(self, peer: Any = ("127.0.0.1", 40000), *, can_eof: bool = True) -> None:
        super().__init__()
        self.peer = peer
        self.written: list[bytes] = []
        self.reading = True
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self._can_eof = can_eof

    @property
    def data(self) -> bytes:
        return b"".join(self.written)

    def take(self) -> bytes:
        data = self.data
        self.written.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof_written, "write after write_eof"
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return self._can_eof

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed
