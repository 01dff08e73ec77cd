"""What a command in the fake's containers sees: its arguments, standard streams and files.

``exec`` and ``attach`` (``exec_session``) build a :class:`Process` from the request and
the streams of the transport that carries the session: stdin is anything with an async
``read`` (``b""`` at its end), stdout and stderr anything with an async ``write``.
:class:`ByteQueue` is the stdin a transport's reader task fills as messages arrive. The
commands themselves are in ``shell`` and ``tar``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from kproxy.testing.runtime import Network, PodFilesystem

__all__ = ["ByteQueue", "Command", "Process", "Sink", "Source"]

_STDIN_LIMIT = 64 << 20  # what ``tar x`` buffers before extracting


class Source(Protocol):
    async def read(self) -> bytes: ...


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


class _Empty:
    async def read(self) -> bytes:
        return b""


class ByteQueue:
    """Bytes handed over from a reader task to a process: ``read`` gives ``b""`` at the end."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self.ended = False

    def feed(self, data: bytes) -> None:
        if data and not self.ended:
            self._chunks.append(data)
            self._wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._wakeup.set()

    async def read(self) -> bytes:
        while not self._chunks:
            if self.ended:
                return b""
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._chunks.popleft()


class Process:
    """What a command sees: its arguments, standard streams and the container's files."""

    def __init__(
        self,
        argv: tuple[str, ...],
        stdin: Source | None,
        stdout: Sink,
        stderr: Sink,
        fs: PodFilesystem,
        pod: str,
        namespace: str = "default",
        container: str = "",
    ) -> None:
        self.argv = argv
        self.stdin: Source = stdin if stdin is not None else _Empty()
        self.stdout = stdout
        self.stderr = stderr
        self.fs = fs
        self.pod = pod
        self.namespace = namespace
        self.container = container
        self.network: Network | None = None  # what curl and wget can reach

    async def out(self, text: str) -> None:
        await self.stdout.write(text.encode())

    async def err(self, text: str) -> None:
        await self.stderr.write(text.encode())

    async def read_stdin(self, limit: int = _STDIN_LIMIT) -> bytes | None:
        """All of stdin, or None past ``limit`` bytes."""
        data = bytearray()
        while chunk := await self.stdin.read():
            data += chunk
            if len(data) > limit:
                return None
        return bytes(data)


Command = Callable[[Process], Awaitable[int]]
