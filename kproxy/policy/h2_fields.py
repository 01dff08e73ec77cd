"""HTTP/1.1 heads to HTTP/2 header fields and back, for the HTTP/2 lane.

In: a request head as :mod:`kproxy.policy.request_head` builds it for HTTP/1.1 (request
line, CRLF-ended header lines, blank line), or a response's header fields as an HTTP/2
library hands them over (lowercase names, ``:status`` first). Out: the request's fields
(pseudo-headers first, RFC 9113 §8.3.1), or the response's status and its header lines
as HTTP/1.1 bytes for the relay (:func:`kproxy.policy.headers.response_lines_raw`).

RFC 9113 §8.2.2: connection-specific fields (``Connection``, ``Keep-Alive``,
``Proxy-Connection``, ``Transfer-Encoding``, ``Upgrade``) must not be sent, ``TE`` only as
``trailers``; ``Host`` becomes ``:authority``. Names go lowercase (§8.2). Coming back,
names are canonicalized as Go's HTTP/2 client does (``textproto.CanonicalMIMEHeaderKey``),
so a client of kproxy reads ``Content-Type`` as it would from kubectl proxy.
"""

from __future__ import annotations

import re

from kproxy.errors import UpstreamError
from kproxy.policy.headers import canonical_name

__all__ = ["request_fields", "response_head"]

Fields = list[tuple[bytes, bytes]]

# RFC 9113 §8.2.1: a field name is a lowercase token; a value has no NUL, CR or LF. The
# answer's fields become HTTP/1.1 lines for the client: nothing may split them.
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch

_DROP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"})


def request_fields(head: bytes, scheme: bytes = b"https") -> Fields:
    """The HTTP/2 fields for an HTTP/1.1 request head (origin form)."""
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    authority = b""
    rest: Fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        value = value.strip(b" \t")
        if lname == b"host":
            authority = value
        if lname in _DROP or (lname == b"te" and value.lower() != b"trailers"):
            continue
        rest.append((lname, value))
    return [(b":method", method), (b":scheme", scheme), (b":authority", authority), (b":path", target), *rest]


def response_head(fields: Fields) -> tuple[int, bytes]:
    """(status, header lines as HTTP/1.1 bytes, CRLF-ended, canonical names). Raises
    UpstreamError for a field RFC 9113 §8.2.1 calls malformed."""
    status = 0
    parts: list[bytes] = []
    for name, value in fields:
        if name[:1] == b":":
            if name == b":status":
                status = int(value) if value.isdigit() else 0
            continue
        if _FIELD_NAME(name) is None or b"\r" in value or b"\n" in value or b"\0" in value:
            raise UpstreamError(f"malformed HTTP/2 response from the API server: invalid header field {name[:40]!r}")
        parts += (canonical_name(name), b": ", value.strip(b" \t"), b"\r\n")
    if not 100 <= status <= 999:
        raise UpstreamError("malformed HTTP/2 response from the API server: no valid :status")
    return status, b"".join(parts)
