"""``portforward`` for the fake API server: SPDY streams to a TCP server the test runs.

kubectl (client-go ``tools/portforward``) speaks ``portforward.k8s.io`` over SPDY, either
directly (``Upgrade: SPDY/3.1``) or tunneled through WebSocket binary messages
(subprotocol ``SPDY/3.1+portforward.k8s.io``, kubectl's default since 1.31). For each
local connection it opens two streams with the same ``requestid`` and ``port`` headers:
``streamtype: error`` (which it half-closes at once) and ``streamtype: data``. The
server, as kubelet does, connects to the pod's port and copies bytes both ways; when the
target closes, it half-closes the data stream and then the error stream, which tells
kubectl the forwarded connection is over. A failure is a message on the error stream
(kubectl then reports it and drops the whole port-forward, as it does for kubelet's).

There is no pod network here: :meth:`PodRuntime.forward_port` maps a pod's port to a
loopback address the test listens on. An unmapped port fails like a closed one.
"""

from __future__ import annotations

import asyncio
import contextlib

from kproxy.testing.runtime import PodRuntime, UpgradeSession
from kproxy.testing.spdy_session import SpdySession, SpdyStream

__all__ = ["PORTFORWARD_PROTOCOL", "WEBSOCKET_TUNNEL_PROTOCOL", "serve_portforward"]

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
WEBSOCKET_TUNNEL_PROTOCOL = "SPDY/3.1+" + PORTFORWARD_PROTOCOL
_CONNECT_TIMEOUT = 5.0
_READ_SIZE = 64 * 1024


async def serve_portforward(session: SpdySession, runtime: PodRuntime, record: UpgradeSession) -> None:
    """Pair the client's streams and forward each pair until the session ends."""
    pairs: dict[str, dict[str, SpdyStream]] = {}
    tasks: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.accept()) is not None:
            await stream.reply()
            kind = stream.header("streamtype")
            request_id = stream.header("requestid")
            if kind not in ("error", "data") or not request_id or kind in pairs.get(request_id, {}):
                await stream.reset()
                continue
            pair = pairs.setdefault(request_id, {})
            pair[kind] = stream
            if len(pair) == 2:
                del pairs[request_id]
                task = asyncio.ensure_future(_forward(runtime, record, pair["error"], pair["data"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        # No more streams can come (a GOAWAY): let the connections in flight finish,
        # unless the connection itself is gone.
        ended = asyncio.ensure_future(session.ended.wait())
        try:
            while tasks and not session.closed:
                await asyncio.wait({*tasks, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _forward(runtime: PodRuntime, record: UpgradeSession, error: SpdyStream, data: SpdyStream) -> None:
    port_text = data.header("port")
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        await _fail(error, data, f'invalid port "{port_text}"')
        return
    target = await runtime.resolve(record.namespace, record.pod, port)
    where = f"localhost:{port}"
    try:
        if target is None:
            raise ConnectionRefusedError("connect: connection refused")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*target), _CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        # kubelet's (containerd's) wording, shortened.
        await _fail(
            error,
            data,
            f"error forwarding port {port} to pod {record.pod}, uid : failed to execute portforward in network "
            f"namespace: failed to connect to {where} inside namespace: dial tcp4 127.0.0.1:{port}: {exc}",
        )
        return
    record.connections += 1
    upload = asyncio.ensure_future(_upload(data, writer))
    try:
        while chunk := await reader.read(_READ_SIZE):
            await data.write(chunk)
            if data.local_closed:
                break  # the client reset the stream
        await data.close()
        # kubectl resets the data stream once it has our FIN; the upload ends with that.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(upload), _CONNECT_TIMEOUT)
        await error.close()
    finally:
        # Everything that releases a resource happens before the first await: the
        # session cancels this task when kubectl goes away, and a cancellation that
        # lands while the cleanup awaits must not leave the pod-side socket open.
        upload.cancel()
        writer.close()
        data.release()
        error.release()
        await asyncio.gather(upload, return_exceptions=True)
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _upload(data: SpdyStream, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except OSError:
        pass


async def _fail(error: SpdyStream, data: SpdyStream, message: str) -> None:
    await error.write(message.encode(), fin=True)
    await data.close()
