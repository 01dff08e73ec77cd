"""A stand-in server on 127.0.0.1, for the tests whose upstream (an API server, a
service behind the proxy subresources) is a few lines of asyncio rather than the fake
API server: :class:`LoopbackServer` listens on a port of its own while used as an async
context manager; a subclass answers each connection in ``_serve``."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Self

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Listens while in ``async with`` (TLS with :meth:`_context` when it gives one)."""

    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _context(self) -> ssl.SSLContext | None:
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
