"""Accepting client connections, and pausing when file descriptors run out.

In: a listening socket (TCP or unix, from :mod:`kproxy.server.sockets`) and the protocol
factory (kproxy's HTTP server). Out: each accepted connection as an asyncio transport
driving a new protocol — or, with ``handoff``, the accepted socket and its peer given to
the caller (the TLS listener, :mod:`kproxy.server.tls`, which peeks and handshakes
itself); :meth:`Acceptor.pause` to stop accepting for a moment.

Why not ``loop.create_server``: when ``accept()`` fails with ``EMFILE`` (no descriptor
left), uvloop's server (libuv) accepts and closes whatever waits in the backlog and,
if that fails too, closes the listening server for good without a word; asyncio's logs
each failure. Here accepting stops for :data:`PAUSE` seconds — connections already open
keep being served, new ones wait in the kernel's backlog instead of being dropped — one
line per cause per interval goes to the log, and accepting resumes on its own. The
dialer calls :meth:`Acceptor.pause` too when it runs out of descriptors for an upstream
connection: fewer new clients until some leave is what frees them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
from collections.abc import Callable

from kproxy.log import log_throttled

__all__ = ["PAUSE", "Acceptor"]

PAUSE = 0.5  # seconds without accepting once descriptors ran out
_BATCH = 64  # connections accepted per readiness event, at most (the others next turn)
# The kernel is out of something a new connection needs: wait, it comes back.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# The client gave up before we accepted: nothing to do but go on.
_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ECONNRESET})


class Acceptor:
    """Accepts on ``sock`` until :meth:`close`; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        handoff: Callable[[socket.socket, object], None] | None = None,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._accept = sock.accept  # (replaceable in tests)
        self._factory = factory
        self._handoff = handoff  # owns each accepted socket from then on
        self._reading = False
        self._resume: asyncio.TimerHandle | None = None
        self._closed = False
        self._starting: set[asyncio.Task[object]] = set()  # transports being made
        self.paused = 0  # how many times accepting paused (for tests and the soak's record)

    def start(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._ready)
            self._reading = True

    def pause(self, cause: str, seconds: float = PAUSE) -> None:
        """Stop accepting for ``seconds`` (at least until then; a pause in progress is
        not extended): ``cause`` names why, in the one log line per interval."""
        if self._closed or self._resume is not None:
            return
        self.paused += 1
        self._stop_reading()
        self._resume = self._loop.call_later(seconds, self._resumed)
        log_throttled(
            f"accept:{cause}",
            logging.WARNING,
            "%s: not accepting new connections for %gs; connections already open are served",
            cause,
            seconds,
        )

    def close(self) -> None:
        """Stop accepting for good (the socket is the caller's to close)."""
        self._closed = True
        self._stop_reading()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None

    def _resumed(self) -> None:
        self._resume = None
        self.start()

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _ready(self) -> None:
        for _ in range(_BATCH):
            try:
                conn, peer = self._accept()
            except (BlockingIOError, InterruptedError):
                return  # the backlog is empty
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self.pause(f"accepting a connection failed: {exc.strerror or exc}")
                    return
                if exc.errno in _GONE:
                    continue
                log_throttled("accept:" + str(exc.errno), logging.ERROR, "accepting a connection failed: %s", exc)
                return
            conn.setblocking(False)
            if self._handoff is not None:
                self._handoff(conn, peer)
                continue
            task: asyncio.Task[object] = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
            self._starting.add(task)
            task.add_done_callback(functools.partial(self._started, conn=conn))

    def _started(self, task: asyncio.Task[object], *, conn: socket.socket) -> None:
        self._starting.discard(task)
        exc = None if task.cancelled() else task.exception()
        if task.cancelled() or exc is not None:
            # It never became a transport. (A transport that did took the descriptor
            # over and left the socket object detached: closing it again is harmless.)
            conn.close()
            if exc is not None:
                log_throttled("accept:transport", logging.WARNING, "a client connection could not be set up: %s", exc)
