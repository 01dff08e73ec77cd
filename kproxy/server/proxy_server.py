"""ProxyServer: the lifecycle of one kproxy listener, embeddable in any asyncio program.

In: :class:`~kproxy.config.options.Options`. Out: a listening socket (TCP, port 0 allowed, or
a unix socket; HTTPS with ``--tls-cert-file``, :mod:`kproxy.server.tls`), its address, and a
graceful stop: stop accepting, let in-flight
requests finish within a grace period, then close everything, upstream connections
and the unix socket file included. No signal handlers are installed here; that is
the CLI's job, on the main thread.

What it runs besides: with ``--metrics-address``, the admin listener
(:mod:`kproxy.server.admin`, bound first) and its readiness probe; with metrics or an
access log (``--access-log``, or ``-v=2``'s text log), an
:class:`~kproxy.proxy.observe.Observer` for every request; and the reloads
(:meth:`ProxyServer.reload`): the authorized-ranges file, the upstream configuration
(:mod:`kproxy.server.upstream_reload`) when its files change, and on SIGHUP all of them
plus reopening the access log file and the TLS listener's certificate.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from types import TracebackType

from kproxy.config.files import combine_ranges, load_ranges_file
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.http import HTTPServer
from kproxy.log import NOTICE, log
from kproxy.metrics import tally
from kproxy.proxy.access import ClientGate
from kproxy.proxy.access_log import AccessLog
from kproxy.proxy.observe import Observer
from kproxy.proxy.pipeline import Pipeline, build_pipeline
from kproxy.proxy.relay import Relay
from kproxy.server.accept import Acceptor
from kproxy.server.admin import AdminServer
from kproxy.server.memory import MemoryTrim
from kproxy.server.readiness import Readiness
from kproxy.server.sockets import remove_socket, tcp_socket, unix_socket
from kproxy.server.tls import ServingCertificates, TLSListener
from kproxy.server.upstream_reload import UpstreamReload, relay_for
from kproxy.server.watch import FileWatch

__all__ = ["ProxyServer"]


class ProxyServer:
    """``async with ProxyServer(options) as server:`` serves until the block ends.

    ``server.url`` is the base URL to give clients (``http://127.0.0.1:PORT``, or
    ``https://`` with ``--tls-cert-file``);
    ``server.address`` is what kubectl prints after "Starting to serve on".
    """

    def __init__(self, options: Options, *, shutdown_timeout: float = 5.0) -> None:
        self.options = options
        self.shutdown_timeout = shutdown_timeout
        self._sock: socket.socket | None = None
        self._acceptor: Acceptor | None = None  # a plain listener's
        self._tls: TLSListener | None = None  # or the TLS listener
        self._pause: Callable[[str], None] | None = None  # accepting, for a moment
        self._trim: MemoryTrim | None = None
        self._closed = asyncio.Event()
        self._web: HTTPServer | None = None
        self._upstream: UpstreamReload | None = None
        self._pipeline: Pipeline | None = None
        self._observer: Observer | None = None
        self._access_log: AccessLog | None = None
        self._admin: AdminServer | None = None
        self.readiness: Readiness | None = None
        self._address = ""
        self._url = ""
        self.gate = ClientGate(options.authorized_ranges, options.trusted_proxies)
        self._watches: list[FileWatch] = []
        self._certificates: ServingCertificates | None = None

    @property
    def address(self) -> str:
        return self._address

    @property
    def url(self) -> str:
        return self._url

    @property
    def metrics_address(self) -> str:
        """Where the admin listener listens (``HOST:PORT``), or "" without one."""
        return self._admin.address if self._admin is not None else ""

    async def start(self) -> None:
        opts = self.options
        relay = relay_for(opts)
        self._upstream = UpstreamReload(opts, relay, self._use)
        static = None
        if opts.www:
            from kproxy.proxy.static import StaticFiles  # only --www pays for Go's FileServer

            static = StaticFiles(opts.www)
        self._access_log = _access_log(opts)
        if self._access_log is not None or opts.observe.metrics:
            self._observer = Observer(self._access_log)
        pipeline = self._pipeline = build_pipeline(opts, self.gate, relay, static, self._observer)
        loop = asyncio.get_running_loop()
        self._web = HTTPServer(
            pipeline.handle,
            loop,
            pipeline.fast,
            read_header_timeout=opts.read_header_timeout,
            idle_timeout=opts.idle_timeout,
            admit=self.gate.door,
        )
        if opts.observe.metrics:
            await self._start_admin(relay)
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
            self._url = f"{'https' if opts.serving_tls is not None else 'http'}://{url_host}:{port}"
        serving = None if listen.unix_socket else opts.serving_tls
        if serving is not None:
            self._certificates = certificates = ServingCertificates(serving)
            listener = TLSListener(sock, self._web, certificates, self.gate.admits_peer)
            await listener.start_serving()
            self._tls = listener  # it owns the socket
            self._watches.append(FileWatch(lambda: serving.files, certificates.reload))
            self._pause = listener.pause
        else:
            self._sock = sock
            self._acceptor = Acceptor(loop, sock, self._web)
            self._acceptor.start()
            self._pause = self._acceptor.pause
        self._exhausting(relay)
        web = self._web
        self._trim = MemoryTrim(lambda: web.ended)
        self._trim.start()

        if opts.authorized_ranges_file:
            ranges_file = opts.authorized_ranges_file
            self._watches.append(FileWatch(lambda: (ranges_file,), self.reload_ranges))
        if opts.flags is not None and opts.reload_paths:
            self._watches.append(FileWatch(lambda: self.options.reload_paths, self.reload_upstream))
        for watch in self._watches:
            watch.start()
        if self.readiness is None:
            # The first request's connection, dialled while the caller finishes its start
            # (the CLI prints "Starting to serve on" first): docs/startup.md §4. The
            # readiness probe's first check dials one anyway and leaves it in the pool.
            relay.pool.warm_up()

    async def _start_admin(self, relay: Relay) -> None:
        from kproxy.server.exposition import CONTENT_TYPE, Exposition  # prometheus_client: only now

        web = self._web
        assert web is not None
        exposition = Exposition(lambda: (len(web.connections), sum(c.busy for c in web.connections)))
        self.readiness = Readiness(relay, self.options.observe.readiness_period)
        self._admin = AdminServer(self.options.observe, self.gate, self.readiness, exposition.render, CONTENT_TYPE)
        await self._admin.start()
        self.readiness.start()

    def _exhausting(self, relay: Relay) -> None:
        # Out of descriptors for an upstream connection: fewer new clients for a moment.
        relay.pool.dialer.exhausted = self._pause

    def _use(self, options: Options, relay: Relay) -> None:
        """A reloaded upstream: new requests and probes go through ``relay``."""
        self.options = options
        self._exhausting(relay)
        if self._pipeline is not None:
            self._pipeline.use(relay)
        if self.readiness is not None:
            self.readiness.relay = relay

    def reload(self) -> None:
        """Re-read every file kproxy reloads (the CLI calls this on SIGHUP): each keeps
        what is in force when its new version is invalid, and says so in the log. The
        access log file is opened again (log rotation)."""
        self.reload_ranges()
        self.reload_upstream()
        if self._certificates is not None:
            self._certificates.reload()
        if self._access_log is not None:
            self._access_log.reopen()
        for watch in self._watches:
            watch.settle()

    def reload_upstream(self) -> bool:
        """Rebuild the configuration from the kubeconfig, CA and proxy files (SIGHUP, or
        one changed); the one in force stays when the new one is invalid."""
        if self._upstream is None or self.options.flags is None:
            return False
        return self._upstream.reload()

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
            tally.reload("authorized_ranges", False)
            return False
        tally.reload("authorized_ranges", True)
        closed = self.gate.replace(ranges)
        log.log(NOTICE, "reloaded %s: %s", path, ranges.describe())
        if closed:
            log.log(NOTICE, "closed %d upgraded session(s) of clients no longer authorized", closed)
        return True

    async def close(self) -> None:
        """Stop accepting, drain in-flight requests for ``shutdown_timeout``, then close.
        Readiness says 503 from the start; the admin listener closes last."""
        if self.readiness is not None:
            self.readiness.stopping()
        for watch in self._watches:
            watch.stop()
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        if self._tls is not None:
            self._tls.close()
        if self._trim is not None:
            self._trim.stop()
            self._trim = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._web is not None:
            await self._web.shutdown(self.shutdown_timeout, self._cutting)
        if self._tls is not None:
            await self._tls.wait_closed()
            self._tls = None
        self._closed.set()
        if self._upstream is not None:
            relay = self._upstream.relay
            relay.pool.close()
            if relay.lane is not None:
                relay.lane.close()
            await asyncio.sleep(0)  # the aborted connections' sockets close on the loop's next turn
        if self.options.listen.unix_socket:
            remove_socket(self.options.listen.unix_socket)
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        if self._access_log is not None:
            self._access_log.close()

    def _cutting(self) -> None:
        # The grace period is over: the requests still running end as timeouts.
        if self._observer is not None:
            self._observer.cut_off = True

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


def _access_log(options: Options) -> AccessLog | None:
    """The access log asked for: --access-log (to its file or stderr), else -v=2's text
    lines through the logger, else none. An unwritable file is a ConfigError."""
    observe = options.observe
    if observe.access_log:
        try:
            return AccessLog.open(observe.access_log, observe.access_log_file)
        except OSError as exc:
            raise ConfigError(
                f"--access-log-file {observe.access_log_file}: cannot open it for writing: {exc.strerror or exc}"
            ) from None
    if log.isEnabledFor(logging.INFO):
        return AccessLog.to_logger()
    return None
