"""Socket-free stand-ins shared by the unit tests of kproxy's I/O code.

:class:`MockTransport` records what a protocol does to its transport (writes, pauses,
closes, a half-close) — uvicorn's ``MockTransport`` and httpcore's ``AsyncMockStream``
do the same; the test plays the peer by calling the protocol's ``data_received``,
``eof_received`` and ``connection_lost`` itself. :func:`upstream` builds the real
``Upstream`` settings for an API server at ``https://api.example:6443``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from typing import Any

from kproxy.config.upstream import Upstream

__all__ = ["MockTransport", "upstream"]

API = Upstream(
    scheme="https",
    host="api.example",
    port=6443,
    server_path="",
    display="https://api.example:6443",
    host_header=b"api.example:6443",
    ssl_context=None,
    server_hostname="api.example",
    connect_timeout=10.0,
    keepalive=30.0,
    append_server_path=False,
)


def upstream(**changes: Any) -> Upstream:
    """The real settings dataclass for ``https://api.example:6443``, with ``changes``."""
    return dataclasses.replace(API, **changes)


class MockTransport(asyncio.Transport):
    """A transport that records what is done to it; ``tls`` makes it look like TLS."""

    def __init__(
        self,
        *,
        peer: object = ("127.0.0.1", 40000),
        tls: bool = False,
        sock: object | None = None,
        ssl_object: object | None = None,
    ) -> None:
        extra: dict[str, Any] = {"socket": sock, "ssl_object": ssl_object, "peername": peer}
        if tls:
            extra["sslcontext"] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        super().__init__(extra)
        self.written = bytearray()
        self.reading = True
        self.pauses = 0
        self.resumes = 0
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.protocol: asyncio.BaseProtocol | None = None
        self._tls = tls

    @property
    def data(self) -> bytes:
        return bytes(self.written)

    def take(self) -> bytes:
        """What was written since the last take."""
        data = bytes(self.written)
        self.written.clear()
        return data

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.eof_written, "write after write_eof"
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True
        self.resumes += 1

    def is_reading(self) -> bool:
        return self.reading

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return not self._tls  # asyncio's TLS transports cannot half-close

    def write_eof(self) -> None:
        self.eof_written = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol
