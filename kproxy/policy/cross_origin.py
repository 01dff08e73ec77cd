"""Cross-origin rules: which web pages may use the proxy, and what their preflights get.

A browser names the page behind a request in its ``Origin`` header; every other client
(kubectl, curl, client libraries) sends none. What browsers send and why it matters is
in docs/browsers.md; the rules, in order:

* **own**: the ``Origin`` is the request's own origin, ``scheme://Host`` (the dashboard
  under ``--www``): served like any request;
* **allowed**: ``--cors-allowed-origins`` lists it: served, and its answers carry a CORS
  grant (:func:`grant_lines`); its preflights are granted (:meth:`CorsPolicy.preflight`);
* **foreign**: anything else, ``Origin: null`` and unparseable values included. Only
  ``GET``, ``HEAD`` and ``OPTIONS`` without an upgrade pass (:func:`refused`): a page
  can send them anyway (``<img>``, a simple ``fetch``) and cannot read the answer without
  a grant; everything else — a "simple" cross-origin ``POST`` needs no preflight, and
  WebSocket handshakes are outside CORS altogether — is refused.

The flag's grammar, one entry per comma (kubectl's list rules: no trimming, no empty
entries)::

    http://localhost:3000                 an exact origin: scheme://host[:port], compared
    https://Dash.Example.com:443          after normalising (lower case, default port dropped)
    https://[a-z0-9-]+\\.example\\.com      an RE2 pattern (any of ^$*+?()[]{}|\\ makes an
                                          entry a pattern), anchored at both ends

``*``, ``null``, an entry with a path, query or user (``http://a/b``), an invalid pattern
and a pattern that matches ``null`` are :class:`~kproxy.errors.ConfigError`\\ s naming
the flag and the entry.

In: the flag's value and the methods the filter lets through, once at start-up; then per
request the raw ``Origin`` value, the connection's scheme and the ``Host``. Out: a
:class:`CorsPolicy`, verdicts, and header lines. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kproxy.errors import ConfigError
from kproxy.policy.filters import compile_pattern, split_patterns

__all__ = [
    "CORS_METHODS",
    "EXPOSED_HEADERS",
    "FLAG",
    "MAX_AGE",
    "REQUEST_HEADERS",
    "CorsPolicy",
    "Kind",
    "Preflight",
    "grant_lines",
    "own_origin",
    "parse_origin",
    "refused",
    "request_origin",
]

FLAG = "--cors-allowed-origins"
# The methods a preflight may be granted, each named (a "*" would not cover requests
# with credentials, and names are clearer); less those --reject-methods rejects.
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Request headers a page may send: kube-apiserver's own CORS defaults (WithCORS in
# k8s.io/apiserver pkg/server/filters/cors.go) plus the CORS-safelisted names, which
# browsers still list when a value falls outside the safelist (docs/browsers.md §3).
REQUEST_HEADERS = (
    "Accept",
    "Accept-Language",
    "Content-Language",
    "Content-Type",
    "Content-Length",
    "Accept-Encoding",
    "X-CSRF-Token",
    "Authorization",
    "X-Requested-With",
    "If-Modified-Since",
)
# What a granted page may read of an answer besides the safelisted headers.
EXPOSED_HEADERS = (
    "Audit-Id",
    "Warning",
    "Content-Type",
    "Content-Length",
    "Date",
    "Location",
    "Retry-After",
    "X-Kubernetes-Pf-Flowschema-Uid",
    "X-Kubernetes-Pf-Prioritylevel-Uid",
    "X-Kproxy-Rejected-By",
)
MAX_AGE = 600  # s: a browser remembers a preflight's grant this long (Chromium caps at 7200)

Kind = Literal["own", "allowed", "foreign"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# RFC 6454 §6.2's serialisation: scheme "://" host [":" port]; hosts as browsers write
# them (punycode, lower case) or an IPv6 literal in brackets.
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'*+;=-]+)(?::([0-9]{1,5}))?")
_PATTERN_CHARS = frozenset("^$*+?()[]{}|\\")
_HEADER_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REQUEST_HEADERS_LOWER = frozenset(h.lower() for h in REQUEST_HEADERS)
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
_EXPOSE_LINE = "Access-Control-Expose-Headers: " + ", ".join(EXPOSED_HEADERS)


def parse_origin(value: str) -> str | None:
    """The origin in its normal form (lower case, no default port), or None when ``value``
    is not one (``null``, a path, spaces, a list): such a page is treated as foreign."""
    match = _ORIGIN.fullmatch(value)
    if match is None:
        return None
    scheme, host, port = match[1].lower(), match[2].lower(), match[3]
    if port is not None:
        number = int(port)
        if number > 65535:
            return None
        port = None if str(number) == _DEFAULT_PORTS.get(scheme) else str(number)
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


def own_origin(scheme: str, host: str) -> str | None:
    """The request's own origin: ``scheme://Host`` normalised (None if the Host is not a
    host[:port], e.g. empty for an HTTP/1.0 request without one)."""
    return parse_origin(f"{scheme}://{host}") if host else None


def refused(kind: Kind, method: str, upgrade: bool) -> bool:
    """Whether the cross-origin guard refuses the request (docs/browsers.md §4)."""
    return kind == "foreign" and (upgrade or method not in _SAFE_METHODS)


def request_origin(raw_headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Origin`` value, None without one. Browsers send one at most; several
    are joined with commas, which is no origin (so foreign)."""
    values = [value for name, value in raw_headers if len(name) == 6 and name.lower() == b"origin"]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


@dataclass(frozen=True, slots=True)
class Preflight:
    """What a preflight gets: the grant's headers, or why there is none."""

    granted: bool
    headers: tuple[tuple[str, str], ...] = ()
    reason: str = ""


class CorsPolicy:
    """``--cors-allowed-origins`` compiled, with the methods a preflight may be granted."""

    __slots__ = ("_exact", "_methods", "_methods_line", "_patterns", "enabled")

    def __init__(self, exact: frozenset[str], patterns: tuple[tuple[str, Any], ...], methods: Sequence[str]) -> None:
        self._exact = exact
        self._patterns = patterns
        self._methods = frozenset(methods)
        self._methods_line = ", ".join(methods)
        self.enabled = bool(exact or patterns)

    @classmethod
    def parse(cls, value: str, methods: Sequence[str] = CORS_METHODS) -> CorsPolicy:
        """The flag's value → a policy; a bad entry raises ConfigError naming it."""
        exact: set[str] = set()
        patterns: list[tuple[str, Any]] = []
        for entry in split_patterns(FLAG, value):
            if any(c in _PATTERN_CHARS for c in entry):
                patterns.append((entry, _compile(entry)))
            else:
                exact.add(_exact_origin(entry))
        return cls(frozenset(exact), tuple(patterns), tuple(m for m in CORS_METHODS if m in methods))

    def allows(self, origin: str) -> bool:
        """Whether the (normalised) origin is on the list."""
        if origin in self._exact:
            return True
        return any(compiled.fullmatch(origin) is not None for _, compiled in self._patterns)

    def kind(self, value: str, own: str | None) -> Kind:
        """Classify a request's raw ``Origin`` value against its own origin."""
        origin = parse_origin(value)
        if origin is None:
            return "foreign"
        if origin == own:
            return "own"
        return "allowed" if self.allows(origin) else "foreign"

    @property
    def methods(self) -> str:
        return self._methods_line

    def preflight(self, origin: str, method: str, requested: str) -> Preflight:
        """The answer to the preflight of a granted ``origin`` asking for ``method`` and
        the comma-separated ``requested`` headers (``Access-Control-Request-*``): a grant
        naming exactly what was asked, or none when something asked is not allowed."""
        if method not in self._methods:
            allowed = self._methods_line or "none"
            return Preflight(
                False, reason=f"method {_shown(method)} is not allowed across origins (allowed: {allowed})"
            )
        asked = [h.strip() for h in requested.split(",") if h.strip()]
        for name in asked:
            if not _HEADER_TOKEN.fullmatch(name) or name.lower() not in _REQUEST_HEADERS_LOWER:
                return Preflight(
                    False,
                    reason=f"request header {_shown(name)} is not allowed across origins"
                    f" (allowed: {', '.join(REQUEST_HEADERS)})",
                )
        headers = [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Methods", self._methods_line)]
        if asked:
            headers.append(("Access-Control-Allow-Headers", ", ".join(asked)))
        headers += [("Access-Control-Max-Age", str(MAX_AGE)), ("Vary", _PREFLIGHT_VARY)]
        return Preflight(True, tuple(headers))


def grant_lines(origin: str) -> bytes:
    """The header lines an allowed origin's answers carry (``origin`` normalised, so only
    the characters of :data:`_ORIGIN`)."""
    return f"Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n{_EXPOSE_LINE}\r\n".encode("latin-1")


def _shown(text: str) -> str:
    # Client-chosen text in a message: quoted, escaped, bounded.
    return repr(text.encode("ascii", "backslashreplace").decode()[:100])


def _exact_origin(entry: str) -> str:
    origin = parse_origin(entry)
    if origin is not None:
        return origin
    if entry == "null":
        raise ConfigError(
            f"{FLAG}: 'null' cannot be allowed: any page can send Origin: null (sandboxed frames,"
            " file: and data: pages); serve your page from an http:// or https:// origin and list that"
        )
    if entry != entry.strip():
        raise ConfigError(f"{FLAG}: {entry!r} is not an origin: entries are separated by commas without spaces")
    hint = ""
    scheme, sep, rest = entry.partition("://")
    if sep:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
        suggestion = parse_origin(f"{scheme}://{authority}")
        if suggestion is not None:
            hint = f"; did you mean {suggestion!r}?"
    raise ConfigError(
        f"{FLAG}: {entry!r} is not an origin: write scheme://host[:port], with no path, query or user{hint}"
    )


def _compile(entry: str) -> Any:
    if entry == "*":
        raise ConfigError(
            f"{FLAG}: '*' is not an origin: kproxy grants named origins only, never every site; list them"
            " (http://localhost:3000) or write an anchored RE2 pattern (https://[a-z0-9-]+\\.example\\.com)"
        )
    compile_pattern(FLAG, entry)  # first alone: an error then quotes the entry as written
    compiled = compile_pattern(FLAG, f"^(?:{entry})$")
    if compiled.fullmatch("null") is not None:
        raise ConfigError(
            f"{FLAG}: the pattern {entry!r} matches the origin 'null', which any page can send (sandboxed"
            " frames, file: and data: pages); make it match scheme://host only, e.g. 'https://.*'"
        )
    return compiled
