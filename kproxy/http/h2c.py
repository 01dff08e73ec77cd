"""``Upgrade: h2c`` is no upgrade here: kproxy speaks no HTTP/2 to clients.

``curl --http2`` on an ``http://`` URL offers HTTP/2 in an HTTP/1.1 request
(``Connection: Upgrade, HTTP2-Settings``, ``Upgrade: h2c``, ``HTTP2-Settings: ...``;
RFC 7540 §3.2). A server that does not take the offer answers over HTTP/1.1 as if it
had not been made, and curl goes on in HTTP/1.1. llhttp, though, treats the request
as an upgrade (and httptools then leaves its body unread), so the reader parses such a
request again from a head without the offer: :func:`without_h2c`.

In: header lines, or a head as bytes. Out: whether h2c is all that is offered, and the
head without ``Upgrade``, ``HTTP2-Settings`` and those two ``Connection`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["only_h2c", "without_h2c"]

_OFFER = frozenset({b"upgrade", b"http2-settings"})


def only_h2c(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether the request's ``Upgrade`` offers h2c and nothing else."""
    tokens = [t.strip().lower() for n, v in headers if n.lower() == b"upgrade" for t in v.split(b",")]
    return bool(tokens) and all(t == b"h2c" for t in tokens)


def without_h2c(head: bytes) -> bytes:
    """``head`` (request line to the empty line, CRLF-ended) without the h2c offer."""
    lines = head.split(b"\r\n")
    kept = [lines[0]]
    for line in lines[1:-2]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname in _OFFER:
            continue
        if lname == b"connection":
            tokens = [t.strip() for t in value.split(b",") if t.strip().lower() not in _OFFER and t.strip()]
            if not tokens:
                continue
            line = name + b": " + b", ".join(tokens)
        kept.append(line)
    return b"\r\n".join(kept) + b"\r\n\r\n"
