"""``exec`` and ``attach`` over WebSocket: the channel protocol, ``v5`` and ``v4.channel.k8s.io``.

Every message (binary, or text as the official Python client sends stdin) starts with a
channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error,
4 resize (JSON ``{"Width": W, "Height": H}``); v5 adds 255, ``[255, channel]``, with
which the client half-closes a channel (kubectl sends ``[255, 0]`` at the end of its
stdin). The server ends the session with the ``Status`` on channel 3 and a close frame
1000, which the client reads as the end of every stream. In: a prepared aiohttp
WebSocket; out: the session run by ``exec_session`` on it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from kproxy.testing.exec_session import V5, ExecRequest, record_resize, run_session
from kproxy.testing.process import ByteQueue, Sink, Source
from kproxy.testing.runtime import Network, PodFilesystem, UpgradeSession

__all__ = ["serve_websocket"]

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_CHUNK = 32 * 1024  # client-go reads 32 KiB per message; kubelet writes no more at once


class _ChannelSink:
    def __init__(self, ws: web.WebSocketResponse, channel: int) -> None:
        self._ws = ws
        self._prefix = bytes([channel])

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), _CHUNK):
            if self._ws.closed:
                return
            try:
                await self._ws.send_bytes(self._prefix + data[start : start + _CHUNK])
            except ConnectionError:
                return


class _WebSocketStreams:
    """The channel protocol (v4/v5) on an aiohttp WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, req: ExecRequest, record: UpgradeSession) -> None:
        self._ws = ws
        self._v5 = ws.ws_protocol == V5
        self._record = record
        self._stdin = ByteQueue()
        if not req.stdin:
            self._stdin.end()
        self.stdin: Source | None = self._stdin if req.stdin else None
        self.stdout: Sink = _ChannelSink(ws, STDOUT)
        self.stderr: Sink = self.stdout if req.tty else _ChannelSink(ws, STDERR)
        self.gone = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    # Text frames too, as kubelet reads them: the official Python client's
                    # write_stdin(str) sends chr(channel) + text.
                    data: bytes = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    if not data:
                        continue
                    channel, payload = data[0], data[1:]
                    if channel == STDIN:
                        self._stdin.feed(payload)
                    elif channel == RESIZE:
                        record_resize(self._record, payload)
                    elif channel == CLOSE and self._v5 and payload[:1] == bytes([STDIN]):
                        self._stdin.end()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self._stdin.end()
            self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        await _ChannelSink(self._ws, ERROR).write(json.dumps(status, separators=(",", ":")).encode())
        # A normal closure: the client reads it as the end of every channel. close()
        # waits (up to the response's timeout) for the client's close frame.
        await self._ws.close(code=1000)

    async def aclose(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def serve_websocket(
    ws: web.WebSocketResponse, req: ExecRequest, fs: PodFilesystem, record: UpgradeSession, network: Network | None
) -> None:
    """Run one exec/attach over a prepared WebSocket (v4 or v5) until it ends."""
    streams = _WebSocketStreams(ws, req, record)
    try:
        await run_session(req, streams, fs, record, network)
    finally:
        await streams.aclose()
