"""Sending an opened file's bytes: the whole file, one range, or multipart/byteranges parts.

In: the status and headers the file server decided, the open file, and (part header,
offset, count) pieces with a trailer (:mod:`kproxy.proxy.static.byte_ranges`). Out: the
bytes on the client's connection; the file is closed once they are sent or sending fails.

Bodies stream with ``loop.sendfile`` where the loop has it (not uvloop), else in chunks
read with ``os.pread`` in the default executor, so the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import io
import os

from kproxy.http import Request, StreamResponse
from kproxy.proxy.static.byte_ranges import Part

__all__ = ["FileResponse"]

_CHUNK = 256 * 1024


class FileResponse(StreamResponse):
    """Once prepared, sends (part header, offset, count) pieces of ``fobj`` and a trailer,
    then closes it. Without ``fobj`` (HEAD) only the headers go out."""

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        fobj: io.FileIO | None = None,
        parts: tuple[Part, ...] = (),
        trailer: bytes = b"",
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._fobj, self._parts, self._trailer = fobj, parts, trailer

    async def prepare(self, request: Request) -> StreamResponse:
        fobj, self._fobj = self._fobj, None
        try:
            writer = await super().prepare(request)
            if fobj is None:
                return writer
            for head, offset, count in self._parts:
                await self.write(head)
                if not await self._copy(request, fobj, offset, count):
                    # The file shrank under us after Content-Length went out: closing the
                    # connection is the only way left to tell the client.
                    self.force_close()
                    if request.transport is not None:
                        request.transport.close()
                    return writer
            await self.write_eof(self._trailer)
            return writer
        finally:
            if fobj is not None:
                fobj.close()

    async def _copy(self, request: Request, fobj: io.FileIO, offset: int, count: int) -> bool:
        loop = asyncio.get_running_loop()
        if count and request.transport is not None:
            try:  # os.sendfile on asyncio's own loops, as aiohttp's FileResponse does
                return await loop.sendfile(request.transport, fobj, offset, count) == count
            except NotImplementedError:  # uvloop: chunks read off the loop instead
                pass
        while count:
            chunk = await loop.run_in_executor(None, os.pread, fobj.fileno(), min(_CHUNK, count), offset)
            if not chunk:
                return False
            await self.write(chunk)
            offset, count = offset + len(chunk), count - len(chunk)
        return True
