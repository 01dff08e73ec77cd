"""Logging set-up for the command: kproxy's logger to stderr, in klog's format, at the level asked.

In: ``-v`` (kubectl's verbosity number) and ``--log-level`` (a name, which wins). Out: the
``kproxy`` logger (:data:`kproxy.log.log`) writing to stderr, lines formatted as klog
writes them (``W1122 10:39:28.363215   12740 kproxy] message``), not propagated to the root
logger. The default level is NOTICE: kubectl's start-up warnings and one line per kproxy
feature in use; ``-v=2`` adds each request, ``-v=5`` debugging.
"""

from __future__ import annotations

import logging
import sys

from kproxy.log import NOTICE, klog_line, log

__all__ = ["KlogFormatter", "log_level", "setup_logging"]


class KlogFormatter(logging.Formatter):
    """klog's header: ``W1122 10:39:28.363215   12740 kproxy] message``."""

    _LEVELS = {"DEBUG": "I", "INFO": "I", "NOTICE": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}

    def format(self, record: logging.LogRecord) -> str:
        level = self._LEVELS.get(record.levelname, "I")
        line = klog_line(level, record.created, record.getMessage(), record.process)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_level(verbosity: int, level_name: str | None) -> int:
    """The logging level for ``-v`` and ``--log-level`` (the name wins)."""
    if level_name:
        level: int = getattr(logging, level_name.upper())
        return level
    if verbosity >= 5:
        return logging.DEBUG
    if verbosity >= 2:
        return logging.INFO
    return NOTICE


def setup_logging(verbosity: int, level_name: str | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KlogFormatter())
    log.handlers[:] = [handler]
    log.setLevel(log_level(verbosity, level_name))
    log.propagate = False
