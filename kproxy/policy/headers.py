"""HTTP header rules for relaying: pure functions on raw header bytes.

In: header names and values as aiohttp and httptools deliver them (bytes, wire case).
Out: verdicts (hop-by-hop, upgrade) and the canonical spellings Go's ``net/http`` would
send. Rules follow ``httputil.ReverseProxy`` as kubectl uses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "CORS_PREFIX",
    "HOP_BY_HOP",
    "UPGRADE_DROP",
    "canonical_name",
    "connection_tokens",
    "is_upgrade",
    "parse_header_lines",
    "response_lines",
    "response_lines_raw",
]

# RFC 9110 §7.6.1 plus the legacy names Go's ReverseProxy removes.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never forwarded, not even on an upgrade, where everything else passes as sent
# (the client's Connection/Upgrade/Sec-WebSocket-* headers must reach the server).
UPGRADE_DROP = frozenset({b"proxy-authorization", b"proxy-connection", b"keep-alive"})

_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade"})
# The API server's (or a proxied service's) own CORS headers never reach the client:
# kproxy alone decides which pages may read answers made with the user's credentials
# (--cors-allowed-origins, docs/browsers.md §5).
CORS_PREFIX = b"access-control-"

_canonical_cache: dict[bytes, bytes] = {}


def canonical_name(name: bytes) -> bytes:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-dup`` → ``X-Dup``."""
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    if any(c in b" :\t" or c > 126 for c in name):
        canon = name  # Go leaves names with invalid characters alone
    else:
        canon = b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))
    if len(_canonical_cache) < 1024:  # bounded: names are client-chosen
        _canonical_cache[name] = canon
    return canon


def is_upgrade(raw_headers: Sequence[tuple[bytes, bytes]]) -> bool:
    # kubectl's test is a case-insensitive substring "upgrade" in any Connection value
    # (docs/kubectl-proxy.md §8), so "keep-alive, Upgrade" qualifies.
    for name, value in raw_headers:
        if len(name) == 10 and name.lower() == b"connection" and b"upgrade" in value.lower():
            return True
    return False


def connection_tokens(raw_headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in raw_headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def response_lines(raw: list[tuple[bytes, bytes]]) -> tuple[bytes, int | None, bool]:
    """A relayed response's header lines without hop-by-hop ones (and those its
    ``Connection`` lists), without CORS headers (``Access-Control-*``, kproxy's to give)
    and without ``Content-Length``, which the server re-adds;
    also (that Content-Length, whether a ``Date`` came). Runs per response: one pass
    unless ``Connection`` names more than the usual keep-alive or close."""
    parts: list[bytes] = []
    length: int | None = None
    has_date = False
    listing = False
    for name, value in raw:
        lname = name.lower()
        if lname in HOP_BY_HOP:
            if lname == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                listing = True
            continue
        if lname == b"content-length":
            length = int(value)
            continue
        if lname.startswith(CORS_PREFIX):
            continue
        if lname == b"date":
            has_date = True
        parts += (name, b": ", value, b"\r\n")
    if listing:
        listed = connection_tokens(raw)
        parts = [
            b"%b: %b\r\n" % (name, value)
            for name, value in raw
            if name.lower() not in listed
            and name.lower() not in HOP_BY_HOP
            and name.lower() != b"content-length"
            and not name.lower().startswith(CORS_PREFIX)
        ]
    return b"".join(parts), length, has_date


# In a lowercased head with an LF put in front: the lines to drop, and Date.
_NOTED_LINE = re.compile(
    rb"\n("
    + b"|".join(sorted((*HOP_BY_HOP, b"content-length", b"date", CORS_PREFIX + rb"[^:\r\n]*")))
    + rb"):([^\r\n]*)\r(?=\n)"
)


def parse_header_lines(raw: bytes) -> list[tuple[bytes, bytes]]:
    """CRLF-ended header lines → (name, value) pairs, values trimmed."""
    headers: list[tuple[bytes, bytes]] = []
    for line in raw.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and headers:  # obs-fold: part of the previous value
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, _, value = line.partition(b":")
        headers.append((name, value.strip(b" \t")))
    return headers


def response_lines_raw(raw: bytes) -> tuple[bytes, int | None, bool]:
    """:func:`response_lines` on a head's raw, CRLF-ended header lines (llhttp accepts
    no others), in one regex pass instead of a Python loop per header; a ``Connection``
    naming other headers takes the general way."""
    parts: list[bytes] = []
    length: int | None = None
    has_date = False
    at = 0
    # A match spans low[start:end] = "\n" + the line without its LF, so the whole line
    # with its CRLF is raw[start:end] (low is raw shifted by one).
    for match in _NOTED_LINE.finditer(b"\n" + raw.lower()):
        name = match[1]
        if name == b"date":
            has_date = True
            continue
        if name == b"connection" and match[2].strip() not in _PLAIN_CONNECTION:
            return response_lines(parse_header_lines(raw))
        if name == b"content-length":
            length = int(match[2])
        start, end = match.span()
        parts.append(raw[at:start])
        at = end
    if not parts:
        return raw, length, has_date
    parts.append(raw[at:])
    return b"".join(parts), length, has_date
