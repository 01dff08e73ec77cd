"""Go's ``time.ParseDuration``, for kubectl's duration flags (``--keepalive``, ``--connect-timeout``).

In: the flag's name (for the message) and the text given. Out: seconds as a float, or a
:class:`~kproxy.errors.ConfigError` naming the flag and the value.

The grammar is Go's, ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` with the units ``ns``, ``us``
(or ``µs``, U+00B5, or ``μs``, U+03BC), ``ms``, ``s``, ``m`` and ``h``: every number needs
a unit (``30`` is refused), except a lone ``0``; a number needs a digit on one side of
its point (``.5s`` and ``1.s`` are fine, ``.s`` is not); no exponents (``1e3s``), no
empty string. Surrounding whitespace is ignored (Go would refuse it).
"""

from __future__ import annotations

import re

from kproxy.errors import ConfigError

__all__ = ["parse_duration"]

# One number-and-unit part; "ms" before "m" so that 1ms is not 1m followed by "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(flag: str, value: str) -> float:
    """Go's ``time.ParseDuration``: ``30s``, ``1m30s``, ``-1s``, ``0``. Returns seconds."""
    text = value.strip()
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0  # Go's special case: the only number without a unit
    pos, total = 0, 0.0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ConfigError(f"{flag} {value!r}: not a duration; use Go's syntax, e.g. 30s, 1m, 1m30s, 500ms or 0")
    return sign * total
