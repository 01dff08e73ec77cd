"""kproxy's logging conventions: one logger, a NOTICE level for features in use, klog's
lines, and throttled lines for causes that can repeat thousands of times a second.

NOTICE sits between INFO and WARNING, so it shows at the default verbosity: one line
on stderr per kproxy feature in use (stdout stays kubectl's single line). Lines look like
klog's (:func:`klog_line`), whether they come through the logger or from the text access
log writing its own file.

:func:`log_throttled` writes at most one line per cause per interval and counts the
lines it held back in the next one: a client scanning the port, a flood of malformed
requests or a process out of file descriptors must not flood the log (87,672 lines in
15 s was the cost of logging each failed request when descriptors ran out).
"""

from __future__ import annotations

import logging
import os
import time

__all__ = ["NOTICE", "THROTTLE_INTERVAL", "klog_line", "log", "log_throttled"]

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

log = logging.getLogger("kproxy")


def klog_line(letter: str, created: float, message: str, pid: int | None = None) -> str:
    """klog's format: ``W1122 10:39:28.363215   12740 kproxy] message`` (local time)."""
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(created))
    micros = int((created % 1) * 1_000_000)
    return f"{letter}{stamp}.{micros:06d} {os.getpid() if pid is None else pid:7d} kproxy] {message}"


THROTTLE_INTERVAL = 5.0  # seconds between two lines of one cause
_MAX_CAUSES = 1024
_next_line: dict[str, float] = {}
_held_back: dict[str, int] = {}


def log_throttled(cause: str, level: int, message: str, *args: object, interval: float = THROTTLE_INTERVAL) -> bool:
    """Log ``message % args`` unless a line of ``cause`` went out less than ``interval``
    seconds ago; the next line that goes out says how many were held back. Returns
    whether this one went out."""
    now = time.monotonic()
    if now < _next_line.get(cause, 0.0):
        _held_back[cause] = _held_back.get(cause, 0) + 1
        return False
    held = _held_back.pop(cause, 0)
    if len(_next_line) >= _MAX_CAUSES:  # causes may carry client-chosen words: bounded
        _next_line.clear()
        _held_back.clear()
    _next_line[cause] = now + interval
    if held:
        log.log(level, message + " (%d more like this not logged)", *args, held)
    else:
        log.log(level, message, *args)
    return True
