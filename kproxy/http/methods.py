"""Methods llhttp does not know, without slowing down the ones it does.

RFC 9110 §9.1: a method is any token, case-sensitive; Go's server and kubectl forward
``post`` and ``POSTX`` as sent, and kubectl's ``--reject-methods`` sees them as sent.
llhttp parses a fixed list of upper-case methods in C and refuses anything else
("Invalid method encountered", "Expected space after method"). kproxy keeps llhttp for
every request and handles the rest on that error path only:

1. find where the refused request begins in what was read (:func:`message_start`:
   llhttp is run again on a copy, without side effects, to count message starts);
2. take its method token (:func:`method_token`, :func:`is_token`), waiting for more
   bytes while the token is incomplete;
3. give a fresh parser the request with :data:`STAND_IN` in place of the method — a
   method llhttp knows, with no meaning of its own in llhttp (no body rules, no
   upgrade), that kproxy's callbacks recognise — and remember the real one.

In: bytes. Out: offsets and tokens; no I/O, no state.
"""

from __future__ import annotations

import re

import httptools

__all__ = ["STAND_IN", "is_token", "message_start", "method_token"]

# Known to llhttp, unknown to kproxy's table of the usual methods (kproxy.http.parsing).
STAND_IN = b"PURGE"
# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def is_token(data: bytes) -> bool:
    return _TOKEN.fullmatch(data) is not None


def method_token(data: bytes) -> tuple[bytes, int] | None:
    """(the method, where the rest of the request line starts) once ``data`` — a request
    from its first byte — has its first space; None while it has none."""
    space = data.find(b" ")
    if space < 0:
        return None
    return data[:space], space


class _Starts:
    """llhttp's listener for a replay: counts message starts, nothing else."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_message_begin(self) -> None:
        self.count += 1


def _starts(data: bytes) -> int:
    starts = _Starts()
    try:
        httptools.HttpRequestParser(starts).feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        pass  # the replay stops where the real parse stopped
    return starts.count


def message_start(data: bytes) -> int | None:
    """Where the last request that begins in ``data`` begins — ``data`` starting at a
    message boundary — or None if none begins in it.

    llhttp calls ``on_message_begin`` on a request's first byte (empty lines before it
    skipped), so the smallest prefix with as many starts as the whole ends on that byte.
    A binary search over prefixes costs O(n log n) of llhttp's C, and runs only when a
    method is unknown or a head is split across reads behind other requests.
    """
    total = _starts(data)
    if total == 0:
        return None
    low, high = 1, len(data)  # the answer k: _starts(data[:k]) == total, k smallest
    while low < high:
        middle = (low + high) // 2
        if _starts(data[:middle]) >= total:
            high = middle
        else:
            low = middle + 1
    return low - 1
