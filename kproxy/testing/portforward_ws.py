"""``portforward`` over WebSocket with ``v4.channel.k8s.io``: kubelet's channel protocol.

What the official Python client and kubernetes-asyncio speak, and kr8s with no
subprotocol at all (kubelet accepts that too); kubectl tunnels SPDY instead
(``portforward``). The request names its ports (``?ports=80`` or ``ports=80,443``);
port *i* gets channel ``2i`` for data, both ways, and ``2i+1`` for errors, server to
client. Every binary message is ``[channel] + bytes``. As kubelet's
``websocketStreamHandler`` does, the server first writes each port number (uint16, little
endian) on both of its channels, then connects to the pod's port and copies bytes until
that connection ends; a failure is written on the error channel. When every port is done
the server closes the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from aiohttp import WSMsgType, web

from kproxy.testing.runtime import PodRuntime, UpgradeSession
from kproxy.testing.status import ApiError

__all__ = ["CHANNEL_PROTOCOLS", "parse_ports", "serve_channel_portforward"]

CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")
_READ_SIZE = 32 * 1024
_CONNECT_TIMEOUT = 5.0


def parse_ports(query: Mapping[str, list[str]]) -> list[int]:
    """The ``ports`` of a port-forward request, as kubelet's ``NewV4Options`` reads them."""
    values = query.get("ports", [])
    if not values:
        raise ApiError.bad_request('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ApiError.bad_request('query parameter "port" cannot be empty')
        for text in value.split(","):
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise ApiError.bad_request(f'unable to parse "{text}" as a port: must be in the range 1 - 65535')
            ports.append(int(text))
    return ports


async def serve_channel_portforward(
    ws: web.WebSocketResponse, runtime: PodRuntime, record: UpgradeSession, ports: list[int]
) -> None:
    """Forward each port over its channels until every forwarded connection has ended."""
    inbound: dict[int, asyncio.Queue[bytes | None]] = {i: asyncio.Queue() for i in range(len(ports))}
    for i, port in enumerate(ports):
        prefix = port.to_bytes(2, "little")
        await ws.send_bytes(bytes([2 * i]) + prefix)
        await ws.send_bytes(bytes([2 * i + 1]) + prefix)
    reader = asyncio.ensure_future(_read(ws, inbound))
    try:
        await asyncio.gather(*(_forward(ws, runtime, record, i, p, inbound[i]) for i, p in enumerate(ports)))
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _read(ws: web.WebSocketResponse, inbound: dict[int, asyncio.Queue[bytes | None]]) -> None:
    try:
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                if data and data[0] % 2 == 0 and data[0] // 2 in inbound:
                    inbound[data[0] // 2].put_nowait(data[1:])
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    finally:
        for queue in inbound.values():
            queue.put_nowait(None)


async def _forward(
    ws: web.WebSocketResponse,
    runtime: PodRuntime,
    record: UpgradeSession,
    index: int,
    port: int,
    inbound: asyncio.Queue[bytes | None],
) -> None:
    target = await runtime.resolve(record.namespace, record.pod, port)
    try:
        if target is None:
            raise ConnectionRefusedError("connect: connection refused")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target), _CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        message = (
            f"error forwarding port {port} to pod {record.pod}, uid : failed to execute portforward in network "
            f"namespace: failed to connect to localhost:{port} inside namespace: dial tcp4 127.0.0.1:{port}: {exc}"
        )
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(bytes([2 * index + 1]) + message.encode())
        return
    record.connections += 1

    async def upload() -> None:
        while (chunk := await inbound.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sending = asyncio.ensure_future(upload())
    try:
        while chunk := await reader.read(_READ_SIZE):
            if ws.closed:
                break
            await ws.send_bytes(bytes([2 * index]) + chunk)
    except (ConnectionError, OSError):
        pass
    finally:
        sending.cancel()
        writer.close()
        await asyncio.gather(sending, return_exceptions=True)
        with contextlib.suppress(OSError):
            await writer.wait_closed()
