"""The access log: one line per request, written when the request ends.

In: a finished :class:`~kproxy.proxy.observe.Record`. Out: a line, in one of two formats,
to one of two kinds of sink:

* ``json`` — one object per line, every field present (``null`` where one does not
  apply), in this order::

    {"time": "2026-12-06T10:39:28.363Z", "client": "127.0.0.1", "method": "GET",
     "path": "/api/v1/namespaces/default/pods", "verb": "list", "status": 200,
     "bytes_in": 0, "bytes_out": 2745, "duration_ms": 1.254,
     "audit_id": "8f0c…", "user": null, "target": null, "termination": "complete"}

  ``time`` is when the request arrived (RFC 3339, UTC, milliseconds); ``path`` is the
  path as the client sent it, without the query (tokens travel in queries); ``bytes_in``
  and ``bytes_out`` count bodies (the request's, the answer's; both directions of an
  upgraded stream); ``audit_id`` is what the API server logs for the request;
  ``target`` the service, pod or node a proxy URL names; ``termination`` one of
  ``complete``, ``client_gone``, ``upstream_reset``, ``timeout``.
* ``text`` — what ``-v=2`` has always logged: ``CLIENT METHOD PATH STATUS (TARGET)``
  (the path decoded), behind klog's header.

Sinks: a file descriptor (a file opened for appending, or stderr), each line written as
its request ends (the lines of one turn of the event loop in one ``write``); or, for
``-v=2`` without ``--access-log``, kproxy's logger at INFO, as before. Credentials never appear: the
query is left out and no header but the Audit-ID is logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kproxy.log import klog_line, log

if TYPE_CHECKING:
    from kproxy.proxy.observe import Record

__all__ = [
    "MILLIS_FORMAT",
    "AccessLog",
    "duration_ms",
    "fixed_parts",
    "json_line",
    "json_string",
    "json_text",
    "text_message",
    "who",
]

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


class _Clock:
    """RFC 3339 UTC with milliseconds, the seconds formatted once a second. ``offset``
    turns a monotonic time into wall-clock time without asking the clock for each
    request; it is measured again every second.

    The fast path's lines start with ``prefix``, the ``time`` member (and the next
    member's comma) of requests that started in [``since``, ``until``), one millisecond
    in monotonic time: two comparisons per request, and :meth:`stamp` about once in
    tens of requests."""

    __slots__ = ("offset", "prefix", "second", "since", "start", "text", "until")

    def __init__(self) -> None:
        self.second = -1.0
        self.text = ""
        self.start = b""  # b'{"time":"' and the second's text, for the fast path's prefix
        self.offset = time.time() - time.monotonic()
        self.prefix = b""
        self.since = self.until = 0.0

    def tick(self, second: float) -> str:
        self.second = second
        self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.start = b'{"time":"' + self.text.encode()
        self.offset = time.time() - time.monotonic()
        return self.text

    def stamp(self, started: float) -> None:
        """Make ``prefix`` for the millisecond a request that started at ``started``
        (monotonic) started in."""
        offset = self.offset
        began = started + offset
        second = began // 1.0
        if second != self.second:
            self.tick(second)
        self.prefix = self.start + _MILLIS[int((began - second) * 1000.0)]
        self.since = began // 0.001 * 0.001 - offset
        self.until = self.since + 0.001

    def format(self, t: float) -> str:
        second = t // 1.0
        text = self.text if second == self.second else self.tick(second)
        return f"{text}.{int((t - second) * 1000.0):03d}Z"


_CLOCK = _Clock()
_MILLIS = [b'.%03dZ",' % n for n in range(1000)]  # a prefix's end: the milliseconds, the comma


def json_string(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def json_text(value: bytes) -> str:
    """``value`` (a header's bytes) as the inside of a JSON string."""
    return _quote(value.decode("latin-1"))[1:-1]


def who(client: str | None) -> str:
    """The line's ``client`` member, made once per connection by the fast path."""
    return f'"client":{json_string(client)}'


def fixed_parts(method: str, path: str, verb: str, target: str | None) -> tuple[str, str]:
    """The parts of a JSON line fixed by what the request is (its method, path, verb and
    proxy target), made once per forwarding verdict for the fast path: the members from
    ``method`` to ``verb``, and from ``target`` to ``termination`` (a fast exchange ends
    complete, or hands back and is logged the ordinary way)."""
    return (
        f'"method":{_quote(method)},"path":{_quote(path)},"verb":"{verb}"',
        f'"target":{json_string(target)},"termination":"complete"',
    )


# ``duration_ms`` from whole microseconds, ``% divmod(micros, 1000)``: the one way both
# paths write it (the fast path from a table made with it, bytes; the others as text).
MILLIS_FORMAT = "%d.%03d"


def duration_ms(duration: float) -> str:
    """``duration`` (seconds) in milliseconds with three decimals, cut (not rounded) to
    the whole microsecond, as the fast path's lines write it: one request gets the same
    figure on either path."""
    return MILLIS_FORMAT % divmod(math.trunc(duration * 1e6), 1000)


def json_line(record: Record, now: float, duration: float) -> str:
    """The JSON line (newline included) for a record that ended at ``now`` (wall clock)."""
    request = record.request
    audit = record.audit_id
    status = record.status
    return (
        f'{{"time":"{_CLOCK.format(now - duration)}","client":{json_string(record.client)},'
        f'"method":{_quote(request.method)},"path":{_quote(record.path())},"verb":"{record.verb_now()}",'
        f'"status":{"null" if status is None else status},"bytes_in":{record.bytes_in()},'
        f'"bytes_out":{record.bytes_out},"duration_ms":{duration_ms(duration)},'
        f'"audit_id":{_quote(audit.decode("latin-1")) if audit else "null"},"user":{json_string(record.user)},'
        f'"target":{json_string(record.target)},"termination":"{record.termination}"}}\n'
    )


def text_message(record: Record) -> str:
    """The text line's message, as -v=2 has always written it."""
    target = record.target
    status = record.status
    return (
        f"{record.client or '-'} {record.request.method} {record.request.path} "
        f"{'-' if status is None else status}{f' ({target})' if target else ''}"
    )


class AccessLog:
    """Writes records as lines (see the module docstring). ``fd`` None: through the logger.

    Lines are written as their requests end; the lines of requests that end in the same
    turn of the event loop go out together, in one ``write`` at the end of the turn (one
    system call per line would cost more than all the rest of a small request's logging).
    """

    def __init__(self, fmt: str, fd: int | None, path: str = "") -> None:
        self.format = fmt
        self._fd = fd
        self._to_logger = fd is None
        self._path = path  # a file of ours (reopened on SIGHUP), or "" for stderr / the logger
        self._pid = os.getpid()
        # Lines (or the fast path's parts of lines) to write at the end of this turn of the loop.
        self.pending: list[bytes] = []
        self.clock = _CLOCK

    @classmethod
    def open(cls, fmt: str, path: str) -> AccessLog:
        """A log to ``path`` (appended to, created 0600 if missing), or to stderr when
        ``path`` is empty. Raises OSError when the file cannot be opened for writing."""
        if not path:
            return cls(fmt, 2)
        return cls(fmt, _open(path), path)

    @classmethod
    def to_logger(cls) -> AccessLog:
        return cls("text", None)

    @property
    def fd(self) -> int | None:
        """The file descriptor JSON lines go to (None: the text format, or closed)."""
        return self._fd if self.format == "json" else None

    def queue(self, line: str) -> None:
        """Write ``line`` (newline included) at the end of this turn of the event loop."""
        pending = self.pending
        pending.append(line.encode("utf-8", "backslashreplace"))
        if len(pending) == 1:
            self.soon()

    def soon(self) -> None:
        """Lines are pending: write them at the end of this turn of the event loop."""
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop running (a test, or a last line at exit)
            self.flush()

    def write(self, record: Record, now: float, duration: float) -> None:
        if self._fd is None:
            if self._to_logger:
                log.info("%s", text_message(record))
            return  # (closed)
        if self.format == "json":
            self.queue(json_line(record, now, duration))
        else:
            self.queue(klog_line("I", now, text_message(record), self._pid) + "\n")

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        data = b"".join(pending)
        pending.clear()
        fd = self._fd
        if fd is None:
            return
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as exc:  # a full disk must not stop the proxy; say so now and then
            _complain(self._path or "stderr", exc)

    def reopen(self) -> None:
        """Open the file again (after logrotate moved it); keep the old one if that fails."""
        if not self._path or self._fd is None:
            return
        self.flush()
        try:
            fd = _open(self._path)
        except OSError as exc:
            log.error("Keeping the access log file open as it was: cannot reopen %s: %s", self._path, exc.strerror)
            return
        old, self._fd = self._fd, fd
        os.close(old)

    def close(self) -> None:
        self.flush()
        if self._path and self._fd is not None:
            os.close(self._fd)
        if self._fd is not None:
            self._fd = None
            self._to_logger = False


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


_complained_at = 0.0


def _complain(where: str, exc: OSError) -> None:
    global _complained_at
    now = time.monotonic()
    if now - _complained_at >= 60:
        _complained_at = now
        log.error("cannot write the access log to %s: %s (lines are lost until it works again)", where, exc.strerror)
