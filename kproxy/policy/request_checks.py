"""What Go's HTTP server checks in a request head before any handler runs.

In: the request target as sent and the raw header lines. Out: the path, query and
authority of the target (RFC 9112 §3.2: origin form, or absolute form whose host Go
takes in place of the header), and the one ``Host`` — or
:class:`~kproxy.errors.MalformedRequest` (Go's server answers 400 itself then) or
:class:`~kproxy.errors.BadRequest` for a target that is neither form. Also
:func:`plain_host`, the fast path's test of a head in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kproxy.errors import BadRequest, MalformedRequest

__all__ = ["plain_host", "request_host", "split_target"]

_BAD_HOST = re.compile(rb"[ \t\r\n/\\]")


def split_target(target: str) -> tuple[str, str | None, str | None]:
    """(raw path, raw query or None, host from an absolute-form target or None)."""
    authority = None
    if not target.startswith("/"):
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise BadRequest(f"invalid request target {target[:200]!r}: it must start with /")
        # Absolute form (RFC 9112 §3.2.2): Go takes the host from the URL, not the header.
        authority, slash, rest = rest.partition("/")
        target = slash + rest if slash else "/"
    path, qmark, query = target.partition("?")
    return path, (query if qmark else None), authority


def request_host(raw_headers: Sequence[tuple[bytes, bytes]], version: tuple[int, int]) -> str:
    """The request's one Host (``""`` when an HTTP/1.0 request has none), as Go's server
    insists (net/http server.go readRequest)."""
    host: bytes | None = None
    for name, value in raw_headers:
        if len(name) == 4 and name.lower() == b"host":
            if host is not None:
                raise MalformedRequest("too many Host headers")
            host = value
    if host is None:
        if version >= (1, 1):
            raise MalformedRequest("missing required Host header")
        return ""  # HTTP/1.0 may omit it; the filter then sees an empty host
    if _BAD_HOST.search(host):
        raise MalformedRequest(f"malformed Host header {host.decode('latin-1')[:200]!r}")
    return host.decode("latin-1")


def plain_host(raw_headers: Sequence[tuple[bytes, bytes]], version: tuple[int, int]) -> str | None:
    """The fast path's test, in one pass over the headers: the Host as :func:`request_host`
    gives it when the head is plain — one valid Host, no upgrade (kubectl's test:
    "upgrade" in a ``Connection`` value, docs/kubectl-proxy.md §8) and no ``Origin`` (a
    browser's request meets the cross-origin rules) — else None (the ordinary path
    decides, and answers what is malformed)."""
    host: bytes | None = None
    for name, value in raw_headers:
        size = len(name)
        if size == 4:
            if name.lower() == b"host":
                if host is not None:
                    return None
                host = value
        elif size == 10:
            if name.lower() == b"connection" and b"upgrade" in value.lower():
                return None
        elif size == 6 and name.lower() == b"origin":
            return None
    if host is None:
        return None if version >= (1, 1) else ""
    if _BAD_HOST.search(host):
        return None
    return host.decode("latin-1")
