"""Connection upgrades (exec, attach, portforward): answer ``101 Switching Protocols``, then echo.

kube-apiserver hands these connections to the kubelet and speaks SPDY/3.1 or WebSocket
(``v4/v5.channel.k8s.io``, ``portforward.k8s.io``) with stream framing. The fake does the
handshake faithfully and then **echoes every byte** back until the client closes; it
does not frame anything (a stand-in until real exec/port-forward framing is needed).

The handshake:

* WebSocket (``Upgrade: websocket``): ``Sec-WebSocket-Accept`` computed from
  ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2), the first offered ``Sec-WebSocket-Protocol``
  echoed (skipping ``base64url.bearer.authorization.k8s.io.*``, which only carries a token);
* SPDY (``Upgrade: SPDY/3.1``): the first offered ``X-Stream-Protocol-Version`` echoed.

aiohttp's C parser treats only ``websocket`` as an upgrade, so for SPDY the later bytes
would be parsed as new HTTP requests. Taking the connection over with
``request.protocol.set_parser()`` (what aiohttp's own ``WebSocketResponse`` does) sends
every byte after the 101 to ``_EchoParser.feed_data`` instead, for both kinds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from typing import Any

from aiohttp import web

__all__ = ["BEARER_PROTOCOL_PREFIX", "is_upgrade", "upgrade_and_echo"]

BEARER_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_HIGH_WATER = 1 << 20


def is_upgrade(request: web.BaseRequest) -> bool:
    """kube-apiserver's test: a ``Connection`` header naming ``upgrade`` and an ``Upgrade`` header."""
    connection = ",".join(request.headers.getall("Connection", ()))
    tokens = {t.strip().lower() for t in connection.split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


class _EchoParser:
    """Receives the raw bytes after the 101 (the ``set_parser`` protocol: feed_data, feed_eof)."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._protocol: Any = request.protocol
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._wakeup = asyncio.Event()
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.append(bytes(data))
        self._size += len(data)
        self._wakeup.set()
        if self._size > _HIGH_WATER:
            self._protocol.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self._wakeup.set()

    async def read(self) -> bytes | None:
        """The next received bytes, or None at end of stream."""
        while not self._chunks:
            if self.eof:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if self._size <= _HIGH_WATER // 2:
            self._protocol.resume_reading()
        return data


class _Switched(web.StreamResponse):
    """A 101 whose body is the raw upgraded stream."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(status=101, reason="Switching Protocols", headers=headers)
        self.force_close()


def _handshake_headers(request: web.BaseRequest) -> dict[str, str] | None:
    upgrade = request.headers["Upgrade"]
    headers = {"Connection": "Upgrade", "Upgrade": upgrade}
    if upgrade.strip().lower() == "websocket":
        key = request.headers.get("Sec-WebSocket-Key", "")
        try:
            valid = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid = False
        if not valid:
            return None
        headers["Sec-WebSocket-Accept"] = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
        offered = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", ())
            for p in value.split(",")
            if p.strip() and not p.strip().startswith(BEARER_PROTOCOL_PREFIX)
        ]
        if offered:
            headers["Sec-WebSocket-Protocol"] = offered[0]
    else:
        offered = [
            p.strip()
            for value in request.headers.getall("X-Stream-Protocol-Version", ())
            for p in value.split(",")
            if p.strip()
        ]
        if offered:
            headers["X-Stream-Protocol-Version"] = offered[0]
    return headers


async def upgrade_and_echo(request: web.BaseRequest, stopping: asyncio.Event) -> web.StreamResponse | None:
    """Switch protocols and echo until the client closes or ``stopping`` is set.

    Returns None (and sends nothing) when the handshake is invalid: the caller answers 400.
    """
    headers = _handshake_headers(request)
    if headers is None:
        return None
    response = _Switched(headers)
    await response.prepare(request)
    parser = _EchoParser(request)
    protocol: Any = request.protocol  # set_parser is typed for WebSocketReader; any feed_data/feed_eof works
    protocol.set_parser(parser)  # every later byte of this connection goes to parser
    protocol.keep_alive(False)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            read = asyncio.ensure_future(parser.read())
            done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                read.cancel()
                break
            data = read.result()
            if data is None:
                break
            # No Content-Length and no chunking on a 101: write() sends the bytes as they are
            # and waits for the transport to drain when its buffer is full.
            await response.write(data)
    except ConnectionError:
        pass  # the client went away mid-echo
    finally:
        stop.cancel()
        transport = request.transport
        if transport is not None and not transport.is_closing():
            transport.close()
    return response
