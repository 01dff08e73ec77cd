"""The fake API server's port-forward (``kproxy.testing.portforward``), without kubectl.

The regression here is the one CI caught as a flaky ``ResourceWarning: unclosed
<StreamWriter …>``: when kubectl vanished, the session cancelled each forwarding task,
and a cancellation that landed while a task was cleaning up skipped the close of its
pod-side socket. The test cancels the task on every turn of the loop, so one of those
cancellations is certain to land inside the cleanup.
"""

from __future__ import annotations

import asyncio

from kproxy.testing.portforward import _forward
from kproxy.testing.runtime import PodRuntime, UpgradeSession
from kproxy.testing.spdy_frames import Headers
from kproxy.testing.spdy_session import SpdySession, SpdyStream
from tests.waiting import until


async def test_a_cancelled_forward_always_closes_the_pod_side() -> None:
    saw_eof = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.write_eof()  # the pod closes its side: the forward goes on to its cleanup
        await reader.read()  # EOF only once the fake closed its socket
        saw_eof.set()
        writer.close()

    server = await asyncio.start_server(pod, "127.0.0.1", 0)
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    session = SpdySession(send)
    runtime = PodRuntime()
    runtime.forward_port("default", "web-0", 80, "127.0.0.1", server.sockets[0].getsockname()[1])
    record = UpgradeSession(kind="portforward", namespace="default", pod="web-0", transport="spdy", protocol="")
    error = SpdyStream(session, 1, Headers({"streamtype": "error", "port": "80", "requestid": "0"}), fin=True)
    data = SpdyStream(session, 3, Headers({"streamtype": "data", "port": "80", "requestid": "0"}), fin=False)
    task = asyncio.ensure_future(_forward(runtime, record, error, data))
    try:
        # Let the connection open and the pod's bytes and FIN arrive, then cancel at
        # every step until the task is over.
        await until(lambda: record.connections, "the connection to the pod", timeout=5.0)
        assert record.connections == 1
        while not task.done():
            task.cancel()
            await asyncio.sleep(0)
        await asyncio.wait_for(saw_eof.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await session.aclose()
        server.close()
        await server.wait_closed()
