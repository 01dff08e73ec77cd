"""ProxyServer: the lifecycle of one kproxy listener, embeddable in any asyncio program.

In: :class:`~kproxy.config.options.Options`. Out: a listening socket (TCP, port 0 allowed, or
a unix socket), its address, and a graceful stop: stop accepting, let in-flight
requests finish within a grace period, then close everything, upstream connections
and the unix socket file included. No signal handlers are installed here; that is
the CLI's job, on the main thread.
"""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType

from kproxy.config.files import combine_ranges, load_ranges_file
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.http import HTTPServer
from kproxy.log import NOTICE, log
from kproxy.proxy.access import ClientGate
from kproxy.proxy.pipeline import build_pipeline
from kproxy.proxy.relay import Relay
from kproxy.proxy.static import StaticFiles
from kproxy.server.accept import Acceptor
from kproxy.server.memory import MemoryTrim
from kproxy.server.sockets import remove_socket, tcp_socket, unix_socket
from kproxy.server.watch import FileWatch
from kproxy.upstream.dialer import Dialer
from kproxy.upstream.pool import ConnectionPool

__all__ = ["ProxyServer"]


class ProxyServer:
    """``async with ProxyServer(options) as server:`` serves until the block ends.

    ``server.url`` is the base URL to give clients (``http://127.0.0.1:PORT``);
    ``server.address`` is what kubectl prints after "Starting to serve on".
    """

    def __init__(self, options: Options, *, shutdown_timeout: float = 5.0) -> None:
        self.options = options
        self.shutdown_timeout = shutdown_timeout
        self._sock: socket.socket | None = None
        self._acceptor: Acceptor | None = None
        self._trim: MemoryTrim | None = None
        self._closed = asyncio.Event()
        self._web: HTTPServer | None = None
        self._pool: ConnectionPool | None = None
        self._address = ""
        self._url = ""
        self.gate = ClientGate(options.authorized_ranges, options.trusted_proxies)
        self._watches: list[FileWatch] = []

    @property
    def address(self) -> str:
        return self._address

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        opts = self.options
        dialer = Dialer(opts.upstream)
        self._pool = ConnectionPool(dialer)
        relay = Relay(opts.upstream, self._pool)
        static = StaticFiles(opts.www) if opts.www else None
        pipeline = build_pipeline(opts, self.gate, relay, static)
        loop = asyncio.get_running_loop()
        self._web = HTTPServer(
            pipeline.handle,
            loop,
            pipeline.fast,
            read_header_timeout=opts.read_header_timeout,
            idle_timeout=opts.idle_timeout,
            admit=self.gate.door,
        )
        listen = opts.listen
        if listen.unix_socket:
            sock = unix_socket(listen.unix_socket)
            self._address = listen.unix_socket
            self._url = "http://localhost"
        else:
            sock = tcp_socket(listen.host, listen.port, listen.dual_stack)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self._address = f"{shown}:{port}"
            url_host = shown
            if listen.dual_stack or host in ("::", "0.0.0.0"):
                url_host = "127.0.0.1"
            self._url = f"http://{url_host}:{port}"
        self._sock = sock
        self._acceptor = Acceptor(loop, sock, self._web)
        self._acceptor.start()
        web = self._web
        self._trim = MemoryTrim(lambda: web.ended)
        self._trim.start()
        # Out of descriptors for an upstream connection: fewer new clients for a moment.
        dialer.exhausted = self._acceptor.pause

        if opts.authorized_ranges_file:
            ranges_file = opts.authorized_ranges_file
            self._watches.append(FileWatch(lambda: (ranges_file,), self.reload_ranges))
        for watch in self._watches:
            watch.start()

    def reload(self) -> None:
        """Re-read every file kproxy reloads (the CLI calls this on SIGHUP): each keeps
        what is in force when its new version is invalid, and says so in the log."""
        self.reload_ranges()
        for watch in self._watches:
            watch.settle()

    def reload_ranges(self) -> bool:
        """Re-read ``--authorized-ip-ranges-file`` (SIGHUP, or the file changed).

        An unreadable, empty or invalid file is logged and ignored: the list in force
        stays, so a half-written file never opens the gate. Returns whether it changed.
        """
        path = self.options.authorized_ranges_file
        if not path:
            return False
        try:
            ranges = combine_ranges(self.options.authorized_ranges_flag, load_ranges_file(path))
        except ConfigError as exc:
            log.error("Keeping the authorized IP ranges in force: %s", exc)
            return False
        closed = self.gate.replace(ranges)
        log.log(NOTICE, "reloaded %s: %s", path, ranges.describe())
        if closed:
            log.log(NOTICE, "closed %d upgraded session(s) of clients no longer authorized", closed)
        return True

    async def close(self) -> None:
        """Stop accepting, drain in-flight requests for ``shutdown_timeout``, then close."""
        for watch in self._watches:
            watch.stop()
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        if self._trim is not None:
            self._trim.stop()
            self._trim = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._web is not None:
            await self._web.shutdown(self.shutdown_timeout)
        self._closed.set()
        if self._pool is not None:
            self._pool.close()
        if self.options.listen.unix_socket:
            remove_socket(self.options.listen.unix_socket)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` (from another task)."""
        assert self._acceptor is not None
        await self._closed.wait()

    async def __aenter__(self) -> ProxyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
