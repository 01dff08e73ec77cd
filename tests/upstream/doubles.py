"""Socket-free test doubles for the upstream unit tests, and the settings they dial.

In: the calls kproxy's upstream code makes on a transport (``write``, ``pause_reading``,
``close``, ``set_protocol`` ...), a socket (``setsockopt``) or a rotating certificate
source (``context``, ``check``). Out: a record of them, to assert on. Bytes from the peer
are not simulated: a test calls the protocol's ``data_received`` / ``eof_received`` /
``connection_lost`` itself, in the order it means to test (httpcore's
``AsyncMockStream`` and uvicorn's ``MockTransport`` do the same). The one exception is
:class:`ScriptedProxy`, which stands for the loop's ``create_connection`` and
``start_tls`` and answers a CONNECT head with scripted reads, as a forward proxy would.
"""

from __future__ import annotations

import asyncio
import collections
import math
import ssl
from collections.abc import Callable
from typing import Any

from kproxy.credentials.sources import TLSSource
from tests.doubles import MockTransport, upstream

__all__ = ["FakeSSLObject", "FakeSocket", "FakeTLS", "MockTransport", "ProxyTransport", "ScriptedProxy", "upstream"]


class FakeTLS(TLSSource):
    """A rotating client certificate: ``rotate()`` is a new one on disk; ``check`` and
    ``context`` find it (the pool calls the first, the dialer the second)."""

    def __init__(self, check_at: float = math.inf) -> None:
        self.generation = 1
        self.check_at = check_at
        self.checks: list[float] = []
        self.pending = 0  # rotations on disk not yet found
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def rotate(self) -> None:
        self.pending += 1

    def _find(self) -> None:
        self.generation += self.pending
        self.pending = 0

    async def context(self) -> ssl.SSLContext:
        self._find()
        return self.ctx

    def check(self, now: float) -> None:
        self.checks.append(now)
        self.check_at = now + 60
        self._find()


class FakeSocket:
    """Records ``setsockopt`` calls (what the dialer sets on a new connection)."""

    def __init__(self) -> None:
        self.options: list[tuple[int, int, int]] = []
        self.closed = False

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options.append((level, option, value))

    def close(self) -> None:
        self.closed = True


class FakeSSLObject:
    """A TLS connection's ``ssl_object``, holding the peer's certificate (DER)."""

    def __init__(self, der: bytes) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        assert binary_form
        return self.der


class ProxyTransport(MockTransport):
    """The connection to the proxy: answers once the CONNECT head is complete."""

    def __init__(self, proxy: ScriptedProxy) -> None:
        super().__init__()
        self._proxy = proxy
        self._queue: collections.deque[bytes | None] = collections.deque()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        if self.written.endswith(b"\r\n\r\n") and not self._queue:
            self._queue.extend(self._proxy.reads)
            self._next()

    def resume_reading(self) -> None:
        super().resume_reading()
        self._next()

    def _next(self) -> None:
        asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        if not self._queue or not self.reading or self.closed:
            return
        read = self._queue.popleft()
        protocol = self.protocol
        assert isinstance(protocol, asyncio.Protocol)
        if read is None:  # the proxy closes the connection
            if not protocol.eof_received():
                self.closed = True
                protocol.connection_lost(None)
            return
        protocol.data_received(read)
        self._next()


class ScriptedProxy:
    """Stands for the loop's create_connection and start_tls."""

    def __init__(self, reads: list[bytes | None], *, dial_error: BaseException | None = None) -> None:
        self.reads = reads  # None: end of stream
        self.dial_error = dial_error
        self.dials: list[dict[str, Any]] = []
        self.transport: ProxyTransport | None = None
        self.handshakes: list[tuple[asyncio.BaseTransport, asyncio.BaseProtocol, ssl.SSLContext, str | None]] = []
        self.tls_result: MockTransport | BaseException | None = MockTransport(tls=True)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        **kw: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        self.dials.append({"host": host, "port": port, **kw})
        if self.dial_error is not None:
            raise self.dial_error
        protocol = protocol_factory()
        transport = self.transport = ProxyTransport(self)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return transport, protocol

    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        **kw: Any,
    ) -> asyncio.Transport | None:
        self.handshakes.append((transport, protocol, sslcontext, server_hostname))
        if isinstance(self.tls_result, BaseException):
            raise self.tls_result
        return self.tls_result
