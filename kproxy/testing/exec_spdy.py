"""``exec`` and ``attach`` over SPDY/3.1: one stream per channel.

The client opens one stream per channel, typed by its ``streamtype`` header (``error``,
``stdin``, ``stdout``, ``stderr``, ``resize``). The server answers each with SYN_REPLY,
half-closes stdout and stderr at the end, and writes the ``Status`` on the error stream
before half-closing it; streams it did not ask for are reset. In: a
:class:`~kproxy.testing.spdy_session.SpdySession`; out: the session run by
``exec_session`` on its streams.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from kproxy.testing.exec_session import ExecRequest, record_resize, run_session
from kproxy.testing.process import Sink, Source
from kproxy.testing.runtime import Network, PodFilesystem, UpgradeSession
from kproxy.testing.spdy_session import SpdySession, SpdyStream

__all__ = ["serve_spdy"]

_STREAM_WAIT = 10.0  # kubelet waits 30 s for the client to open its SPDY streams
_HANGUP_WAIT = 5.0  # how long the server waits for the client to hang up at the end


class _SpdyStreams:
    """The streams kubectl opens on a SPDY connection, one per channel."""

    def __init__(self, session: SpdySession, streams: dict[str, SpdyStream], req: ExecRequest) -> None:
        self._session = session
        self._streams = streams
        self.stdin: Source | None = streams.get("stdin")
        out = streams.get("stdout")
        err = streams.get("stderr")
        self.stdout: Sink = out if out is not None else _Discard()
        self.stderr: Sink = err if err is not None else (self.stdout if req.tty else _Discard())
        self.gone = session.ended

    async def finish(self, status: dict[str, Any]) -> None:
        for kind in ("stdout", "stderr"):
            stream = self._streams.get(kind)
            if stream is not None:
                await stream.close()
        error = self._streams["error"]
        await error.write(json.dumps(status, separators=(",", ":")).encode(), fin=True)
        stdin = self._streams.get("stdin")
        if stdin is not None:
            await stdin.close()  # client-go waits for the server to close remote stdin


class _Discard:
    async def write(self, data: bytes) -> None:
        return None


async def _accept_streams(
    session: SpdySession, req: ExecRequest, record: UpgradeSession
) -> dict[str, SpdyStream] | None:
    expected = {"error"}
    if req.stdin:
        expected.add("stdin")
    if req.stdout:
        expected.add("stdout")
    if req.stderr and not req.tty:
        expected.add("stderr")
    if req.tty:
        expected.add("resize")
    got: dict[str, SpdyStream] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STREAM_WAIT
    while set(got) != expected:
        try:
            stream = await asyncio.wait_for(session.accept(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return None  # kubelet: "timed out waiting for client to create streams"
        if stream is None:
            return None
        kind = stream.header("streamtype")
        await stream.reply()
        if kind in expected and kind not in got:
            got[kind] = stream
        else:
            await stream.reset()
    return got


async def _read_resizes(stream: SpdyStream, record: UpgradeSession) -> None:
    pending = b""
    while chunk := await stream.read():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            record_resize(record, line)


async def _refuse_more(session: SpdySession) -> None:
    while (stream := await session.accept()) is not None:
        await stream.reply()
        await stream.reset()


async def serve_spdy(
    session: SpdySession, req: ExecRequest, fs: PodFilesystem, record: UpgradeSession, network: Network | None
) -> None:
    """Run one exec/attach over a SPDY session until it ends (the caller closes the session)."""
    streams = await _accept_streams(session, req, record)
    if streams is None:
        return
    helpers = [asyncio.ensure_future(_refuse_more(session))]
    if "resize" in streams:
        helpers.append(asyncio.ensure_future(_read_resizes(streams["resize"], record)))
    try:
        await run_session(req, _SpdyStreams(session, streams, req), fs, record, network)
        await session.flush()
        # The client hangs up once it has read the error stream to its end.
        try:
            await asyncio.wait_for(session.ended.wait(), _HANGUP_WAIT)
        except TimeoutError:
            pass
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
