"""kproxy's logging conventions: one logger, a NOTICE level for features in use, klog's lines.

NOTICE sits between INFO and WARNING, so it shows at the default verbosity: one line
on stderr per kproxy feature in use (stdout stays kubectl's single line). Lines look like
klog's (:func:`klog_line`), whether they come through the logger or from the text access
log writing its own file.
"""

from __future__ import annotations

import logging
import os
import time

__all__ = ["NOTICE", "klog_line", "log"]

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

log = logging.getLogger("kproxy")


def klog_line(letter: str, created: float, message: str, pid: int | None = None) -> str:
    """klog's format: ``W1122 10:39:28.363215   12740 kproxy] message`` (local time)."""
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(created))
    micros = int((created % 1) * 1_000_000)
    return f"{letter}{stamp}.{micros:06d} {os.getpid() if pid is None else pid:7d} kproxy] {message}"
