"""ProxyServer: the lifecycle of one kproxy listener, embeddable in any asyncio program.

In: :class:`~kproxy.config.options.Options`. Out: a listening socket (TCP, port 0 allowed, or
a unix socket), its address, and a graceful stop: stop accepting, let in-flight
requests finish within a grace period, then close everything, upstream connections
and the unix socket file included. No signal handlers are installed here; that is
the CLI's job, on the main thread.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from types import TracebackType

from kproxy.config.files import combine_ranges, load_ranges_file
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.http import HTTPServer
from kproxy.log import NOTICE, log
from kproxy.policy.gonet import join_host_port
from kproxy.proxy.access import ClientGate
from kproxy.proxy.pipeline import build_pipeline
from kproxy.proxy.relay import Relay
from kproxy.proxy.static import StaticFiles
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
        self._server: asyncio.AbstractServer | None = None
        self._web: HTTPServer | None = None
        self._pool: ConnectionPool | None = None
        self._address = ""
        self._url = ""
        self.gate = ClientGate(options.authorized_ranges, options.trusted_proxies)
        self._ranges_stamp: tuple[float, int] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return self._address

    @property
    def url(self) -> str:
        return self._url

    async def start(self) -> None:
        opts = self.options
        self._pool = ConnectionPool(Dialer(opts.upstream))
        relay = Relay(opts.upstream, self._pool)
        static = StaticFiles(opts.www) if opts.www else None
        pipeline = build_pipeline(opts, self.gate, relay, static)
        loop = asyncio.get_running_loop()
        self._web = HTTPServer(pipeline.handle, loop, pipeline.fast)
        listen = opts.listen
        if listen.unix_socket:
            sock = _unix_socket(listen.unix_socket)
            self._server = await loop.create_unix_server(self._web, sock=sock, backlog=1024)
            self._address = listen.unix_socket
            self._url = "http://localhost"
        else:
            sock = _tcp_socket(listen.host, listen.port, listen.dual_stack)
            self._server = await loop.create_server(self._web, sock=sock, backlog=1024)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self._address = f"{shown}:{port}"
            url_host = shown
            if listen.dual_stack or host in ("::", "0.0.0.0"):
                url_host = "127.0.0.1"
            self._url = f"http://{url_host}:{port}"

        if opts.authorized_ranges_file:
            self._ranges_stamp = _stamp(opts.authorized_ranges_file)
            self._watcher = asyncio.create_task(self._watch_ranges_file())

    def reload_ranges(self) -> bool:
        """Re-read ``--authorized-ip-ranges-file`` (SIGHUP, or the file changed).

        An unreadable, empty or invalid file is logged and ignored: the list in force
        stays, so a half-written file never opens the gate. Returns whether it changed.
        """
        path = self.options.authorized_ranges_file
        if not path:
            return False
        self._ranges_stamp = _stamp(path)
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

    async def _watch_ranges_file(self) -> None:
        # Polling: portable, and a 1 s delay is fine for an allow-list edit.
        path = self.options.authorized_ranges_file
        while True:
            await asyncio.sleep(1.0)
            if _stamp(path) != self._ranges_stamp:
                self.reload_ranges()

    async def close(self) -> None:
        """Stop accepting, drain in-flight requests for ``shutdown_timeout``, then close."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self._server is not None:
            self._server.close()
        if self._web is not None:
            await self._web.shutdown(self.shutdown_timeout)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._pool is not None:
            self._pool.close()
        if self.options.listen.unix_socket:
            _remove_socket(self.options.listen.unix_socket)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

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


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size)


def _tcp_socket(host: str, port: int, dual_stack: bool) -> socket.socket:
    shown = join_host_port(host, str(port))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"listen tcp {shown}: lookup {host}: {exc.strerror}") from None
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(sockaddr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if dual_stack and family == socket.AF_INET6 and exc.errno != 98:
            return _tcp_socket("0.0.0.0", port, False)  # no IPv6 on this host
        raise ConfigError(f"listen tcp {shown}: bind: {(exc.strerror or str(exc)).lower()}") from None
    sock.setblocking(False)
    return sock


def _unix_socket(path: str) -> socket.socket:
    # Like kubectl: a stale socket from a killed proxy is replaced, anything else is not.
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # the socket is as private as kubectl's: srwx------
    try:
        sock.bind(path)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"listen unix {path}: bind: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        os.umask(old)
    sock.setblocking(False)
    return sock


def _remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
