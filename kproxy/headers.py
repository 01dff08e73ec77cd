"""HTTP header rules for relaying: pure functions on raw header bytes.

In: header names and values as aiohttp and httptools deliver them (bytes, wire case).
Out: verdicts (hop-by-hop, upgrade) and the canonical spellings Go's ``net/http`` would
send. Rules follow ``httputil.ReverseProxy`` as kubectl uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "HOP_BY_HOP",
    "UPGRADE_DROP",
    "canonical_name",
    "connection_tokens",
    "is_upgrade",
    "raw_lines",
    "response_lines",
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
    # (reference §8), so "keep-alive, Upgrade" qualifies.
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
    ``Connection`` lists) and without ``Content-Length``, which the server re-adds;
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
        if lname == b"date":
            has_date = True
        parts += (name, b": ", value, b"\r\n")
    if listing:
        listed = connection_tokens(raw)
        parts = [b"%b: %b\r\n" % (name, value) for name, value in raw
                 if name.lower() not in listed and name.lower() not in HOP_BY_HOP
                 and name.lower() != b"content-length"]
    return b"".join(parts), length, has_date


def raw_lines(raw: list[tuple[bytes, bytes]]) -> bytes:
    """Header lines exactly as received (a relayed 101)."""
    return b"".join(b"%b: %b\r\n" % pair for pair in raw)
