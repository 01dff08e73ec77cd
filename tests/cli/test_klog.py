"""kproxy.cli.klog: the level for -v and --log-level, klog's line format, the handler set-up."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator

import pytest

from kproxy.cli.klog import KlogFormatter, log_level, setup_logging
from kproxy.log import NOTICE, log


@pytest.mark.parametrize(
    ("verbosity", "name", "level"),
    [
        (0, None, NOTICE),
        (1, None, NOTICE),
        (2, None, logging.INFO),
        (4, None, logging.INFO),
        (5, None, logging.DEBUG),
        (9, None, logging.DEBUG),
        (9, "error", logging.ERROR),  # the name wins
        (0, "warning", logging.WARNING),
        (0, "info", logging.INFO),
        (0, "debug", logging.DEBUG),
    ],
)
def test_log_level(verbosity: int, name: str | None, level: int) -> None:
    assert log_level(verbosity, name) == level


@pytest.mark.parametrize(
    ("level", "letter"),
    [
        (logging.DEBUG, "I"),
        (logging.INFO, "I"),
        (NOTICE, "I"),
        (logging.WARNING, "W"),
        (logging.ERROR, "E"),
        (logging.CRITICAL, "F"),
    ],
)
def test_klog_line(level: int, letter: str) -> None:
    record = logging.LogRecord("kproxy", level, __file__, 1, "listening on %s", ("x",), None)
    line = KlogFormatter().format(record)
    assert re.fullmatch(rf"{letter}\d{{4}} \d\d:\d\d:\d\d\.\d{{6}} +\d+ kproxy\] listening on x", line), line
    assert line[22:30] == f"{record.process:7d} "


def test_exceptions_follow_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("kproxy", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = KlogFormatter().format(record).splitlines()
    assert lines[0].endswith("kproxy] failed") and lines[-1] == "ValueError: boom"


@pytest.fixture
def restore_logger() -> Iterator[None]:
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    yield
    log.handlers[:] = handlers
    log.setLevel(level)
    log.propagate = propagate


@pytest.mark.usefixtures("restore_logger")
def test_setup_logging_owns_the_kproxy_logger(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, None)
    setup_logging(2, None)  # again: still one handler
    assert len(log.handlers) == 1 and isinstance(log.handlers[0].formatter, KlogFormatter)
    assert log.level == logging.INFO and not log.propagate
    log.info("hello %s", "there")
    log.debug("not shown")
    assert re.fullmatch(r"I\d{4} [\d:.]+ +\d+ kproxy\] hello there\n", capsys.readouterr().err)
    assert logging.getLogger("aiohttp").handlers == []  # kproxy leaves other libraries' loggers alone
