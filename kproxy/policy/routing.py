"""Request routing as kubectl proxy's Go ServeMux does it: path cleaning, prefixes, stripping.

In: the API prefix and the optional www prefix (once, at start-up); then per request the
request-target's path exactly as the client sent it (still percent-encoded) and its raw query.
Out: a :class:`Route` saying what answers the request —

* ``api``: the API handler; ``path`` is the decoded, prefix-stripped path the filter sees and
  ``raw_path`` the same path with the client's own percent-encoding, to send upstream;
* ``static``: the file server; ``path``/``raw_path`` have the www prefix stripped;
* ``redirect``: a 301 to ``location`` (body: :func:`redirect_body`);
* ``not_found``: Go's plain 404;
* ``bad_request``: a 400, as Go's server gives when the target is not a valid path (an
  invalid ``%`` escape such as ``%zz``, or not starting with ``/``).

For the three answer kinds ``path`` is the decoded path where it could be decoded and
``raw_path`` the path as sent, for logs.

The rules are Go ≥ 1.22 ``net/http.ServeMux`` plus kubectl's handlers (docs/kubectl-proxy.md §3, §4, §9):

* the mux looks at the *escaped* path: ``//`` and ``.``/``..`` segments give a 301 to the
  cleaned path, ``%2e%2e`` is left alone;
* prefixes are matched segment by segment after unescaping each segment, so ``/%63ustom/``
  matches ``/custom/`` but ``/custom%2Fapi/`` does not; the longest prefix wins;
* a path equal to a prefix without its final ``/`` gets a 301 to the prefix (checked first);
* kubectl strips the API prefix only when it does not start with ``/api``;
* ``http.StripPrefix`` needs the www prefix literally in the raw path too.

Deliberate differences from kubectl, each marked "kproxy:" below: a stripped API path keeps
the client's percent-encoding (kubectl re-escapes the decoded path, turning ``a%2Fb`` into
``a/b``); the cleaned-path redirect does not escape ``%`` a second time (Go sends
``/a%252Fb`` for ``//a%2Fb``); equal or malformed prefixes are configuration errors instead
of a panic or a prefix that never matches.

Standard library only; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

from kproxy.errors import ConfigError
from kproxy.policy import gopath

__all__ = [
    "Route",
    "RouteKind",
    "Router",
    "normalize_prefix",
    "redirect_body",
    "upstream_path",
]

RouteKind = Literal["api", "static", "redirect", "not_found", "bad_request"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes; see the module docstring for what each field holds per kind."""

    kind: RouteKind
    path: str
    raw_path: str
    location: str | None = None


# Go's validEncoded(path): if the raw path has anything else (", <, {, |, non-ASCII ...),
# url.URL.EscapedPath() is the decoded path re-escaped, and the mux works on that.
_VALID_ENCODED = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]%/]*").fullmatch
# Go's unescape: '%' must be followed by two hex digits, or url.ParseRequestURI fails (400).
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})").search
# Characters a prefix may not contain: Go's pattern syntax ({wildcards}, "METHOD path").
_BAD_PREFIX_CHAR = re.compile(r"[{}%\s\x00-\x1f\x7f]").search


def _escape(path: str) -> str:
    """Go's ``escape(s, encodePath)``: what url.URL.EscapedPath() makes of a decoded path."""
    return quote(path, safe="$&+,/:;=@", errors="surrogateescape")


def _unescape(segment: str) -> str:
    # Undecodable bytes survive as surrogates, so a later _escape gives them back unchanged.
    return unquote(segment, errors="surrogateescape") if "%" in segment else segment


def _clean_path(p: str) -> str:
    """Go's net/http cleanPath: path.Clean on a rooted path, keeping a trailing slash."""
    if p == "":
        return "/"
    if p[0] != "/":
        p = "/" + p
    cleaned = gopath.clean(p)
    # path.Clean drops a trailing slash except on the root; cleanPath puts it back.
    if p[-1] == "/" and cleaned != "/":
        cleaned += "/"
    return cleaned


def _location(path: str, raw_query: str | None) -> str:
    # Go appends "?"+RawQuery only when RawQuery is non-empty (a bare "?" is dropped), then
    # http.Redirect hex-escapes non-ASCII bytes (lower-case hex, as Go's strconv does).
    location = f"{path}?{raw_query}" if raw_query else path
    if location.isascii():
        return location
    data = location.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if b < 0x80 else f"%{b:x}" for b in data)


def normalize_prefix(flag: str, value: str) -> str:
    """kubectl's prefix normalisation (``--api-prefix``, ``--www-prefix``), checked.

    ``""`` becomes ``/`` and a missing trailing ``/`` is appended, as kubectl does. kproxy:
    a prefix that Go's ServeMux would read as a host, reject, or never match is a ConfigError.
    """
    if value == "":
        return "/"
    if not value.startswith("/"):
        suggestion = "/" + value + ("" if value.endswith("/") else "/")
        raise ConfigError(
            f"{flag}: {value!r} must start with '/' (kubectl reads it as a host name and"
            f" never matches it); did you mean {flag}={suggestion}?"
        )
    prefix = value if value.endswith("/") else value + "/"
    bad = _BAD_PREFIX_CHAR(prefix)
    if bad is not None:
        raise ConfigError(
            f"{flag}: {value!r} contains {bad.group()!r}; a prefix is a plain path: no"
            " spaces, control characters, '{', '}' or '%' escapes (write the character itself)"
        )
    if _clean_path(prefix) != prefix:
        raise ConfigError(
            f"{flag}: {value!r} has an empty, '.' or '..' segment and could never match;"
            f" did you mean {flag}={_clean_path(prefix)}?"
        )
    return prefix


def _segments(prefix: str) -> tuple[str, ...]:
    return () if prefix == "/" else tuple(prefix[1:-1].split("/"))


def _remainder(prefix: str, segments: tuple[str, ...], path: str) -> str | None:
    """What Go's ``/a/b/`` pattern's trailing ``{...}`` matches in ``path``, or None.

    Segments are compared unescaped, so ``/%61/b/x`` matches ``/a/b/`` while an encoded '/'
    inside a segment is not a separator (Go's routing tree: firstSegment + pathUnescape).
    The remainder is returned without its leading '/', still in ``path``'s encoding.
    """
    if path.startswith(prefix):
        return path[len(prefix) :]
    if "%" not in path:
        return None  # prefixes hold no '%', so the literal test above was exact
    n = len(segments)
    parts = path[1:].split("/", n)
    if len(parts) <= n:
        return None
    for i in range(n):
        if _unescape(parts[i]) != segments[i]:
            return None
    return parts[n]


class Router:
    """The mux: API handler at the API prefix, file server at the www prefix if enabled.

    Prefixes are expected normalised (:func:`normalize_prefix`); they are normalised again
    here, which changes nothing for a normalised one.
    """

    __slots__ = (
        "_api_only_root",
        "_api_prefix",
        "_api_segments",
        "_handlers",
        "_slashless",
        "_slashless_depths",
        "_strip",
        "_www_prefix",
    )

    def __init__(self, api_prefix: str, www_prefix: str | None) -> None:
        api_prefix = normalize_prefix("--api-prefix", api_prefix)
        if www_prefix is not None:
            www_prefix = normalize_prefix("--www-prefix", www_prefix)
            if www_prefix == api_prefix:
                # Go's ServeMux panics on the duplicate pattern (docs/kubectl-proxy.md §1.1 step 6).
                raise ConfigError(
                    f"--api-prefix and --www-prefix are both {api_prefix!r}; they must differ,"
                    " e.g. --api-prefix=/ --www-prefix=/static/"
                )
        self._api_prefix = api_prefix
        self._api_segments = _segments(api_prefix)
        # kubectl (NewProxyHandler): `if !strings.HasPrefix(apiProxyPrefix, "/api")` strip —
        # a plain string test, so /apifoo/ and /api-proxy/ are not stripped either.
        self._strip = not api_prefix.startswith("/api") and api_prefix != "/"
        self._www_prefix = www_prefix
        handlers: list[tuple[str, tuple[str, ...], Literal["api", "static"]]] = [
            (api_prefix, self._api_segments, "api")
        ]
        if www_prefix is not None:
            handlers.append((www_prefix, _segments(www_prefix), "static"))
        # Go's tree tries literal segments before the trailing {...}: the longest prefix wins.
        handlers.sort(key=lambda h: len(h[1]), reverse=True)
        self._handlers = tuple(handlers)
        # "/custom" → "/custom/" redirects, keyed by the prefix's segments (and their count,
        # a cheap first test).
        self._slashless = frozenset(segs for _, segs, _ in handlers if segs)
        self._slashless_depths = frozenset(len(segs) for segs in self._slashless)
        self._api_only_root = api_prefix == "/" and www_prefix is None

    def route(self, raw_path: str, raw_query: str | None) -> Route:
        """Route one request. ``raw_path`` is the target's path as sent (escaped form).

        For an absolute-form target pass its path ("" if it has none: Go redirects that to
        "/"). ``CONNECT`` and ``OPTIONS *`` are the caller's: Go's server answers them before
        any routing (docs/kubectl-proxy.md §3).
        """
        if raw_path[:1] == "/" and "%" not in raw_path and "//" not in raw_path and "/." not in raw_path:
            # The common case: nothing to decode, nothing to clean. Without '%' the raw path
            # is also the decoded one, and Go's re-escaped form (for characters such as '"')
            # differs from it only inside segments, so routing it gives the same answer.
            if self._api_only_root:
                return Route("api", raw_path, raw_path)
            return self._resolve(raw_path, raw_path, raw_path, raw_query)
        if not raw_path.startswith("/") and raw_path != "":
            # "" is an absolute-form target without a path; Go redirects it to "/".
            return Route("bad_request", raw_path, raw_path)
        if "%" in raw_path:
            if _BAD_ESCAPE(raw_path) is not None:
                return Route("bad_request", raw_path, raw_path)
            decoded = unquote(raw_path, errors="surrogateescape")
        else:
            decoded = raw_path
        escaped = raw_path if _VALID_ENCODED(raw_path) is not None else _escape(decoded)
        return self._resolve(raw_path, decoded, escaped, raw_query)

    def _resolve(self, raw: str, decoded: str, escaped: str, raw_query: str | None) -> Route:
        # Go's ServeMux.findHandler, for every method but CONNECT.
        if escaped == "" or "//" in escaped or "/." in escaped:
            cleaned = _clean_path(escaped)
        else:
            cleaned = escaped
        if self._slashless_depths and cleaned.count("/") in self._slashless_depths and not cleaned.endswith("/"):
            segments = tuple(_unescape(s) for s in cleaned[1:].split("/"))
            if segments in self._slashless:
                # matchOrRedirect: Location is cleanPath(r.URL.Path)+"/", built from the
                # *decoded* path and escaped again by url.URL.String().
                location = _escape(_clean_path(decoded)) + "/"
                return Route("redirect", decoded, raw, _location(location, raw_query))
        if cleaned != escaped:
            # kproxy: Go puts the cleaned *escaped* path into url.URL.Path, so String()
            # escapes its '%' again (//a%2Fb → /a%252Fb, observed); we send it as cleaned.
            return Route("redirect", decoded, raw, _location(cleaned, raw_query))
        for prefix, segments, kind in self._handlers:
            rest = _remainder(prefix, segments, cleaned)
            if rest is None:
                continue
            if kind == "static":
                return self._static(raw, decoded)
            if not self._strip:
                return Route("api", decoded, raw)
            return self._stripped(raw, decoded, escaped, rest)
        return Route("not_found", decoded, raw)

    def _stripped(self, raw: str, decoded: str, escaped: str, rest: str) -> Route:
        prefix = self._api_prefix
        # kubectl's stripLeaveSlash: TrimPrefix on the decoded path, then a leading "/".
        path = "/" + decoded[len(prefix) :]
        # kproxy: drop the prefix's raw segments instead of re-escaping the decoded path, so
        # /custom/api/v1/namespaces/a%2Fb/pods keeps a%2Fb upstream.
        if escaped != raw:
            # The mux matched a re-escaped path; the raw segments must line up too.
            raw_rest = _remainder(prefix, self._api_segments, raw)
            if raw_rest is None:
                return Route("api", path, _escape(path))
            rest = raw_rest
        return Route("api", path, "/" + rest)

    def _static(self, raw: str, decoded: str) -> Route:
        prefix = self._www_prefix
        assert prefix is not None
        # http.StripPrefix trims both URL.Path and URL.RawPath; RawPath is "" when the client's
        # encoding is Go's default one, otherwise it must carry the prefix literally
        # (/%73tatic/test.txt → 404, docs/kubectl-proxy.md §9).
        path = "/" + decoded[len(prefix) :]
        if raw.startswith(prefix):
            return Route("static", path, "/" + raw[len(prefix) :])
        if raw == _escape(decoded):
            return Route("static", path, _escape(path))
        return Route("not_found", decoded, raw)


def upstream_path(raw_path: str, server_path: str, append_server_path: bool) -> str:
    """The path sent upstream (docs/kubectl-proxy.md §6.1), both arguments in escaped form.

    Without ``--append-server-path`` the kubeconfig server URL's path is dropped (kubectl).
    With it, kubectl appends "/" to the server path and httputil's singleJoiningSlash joins
    the two with exactly one slash: ``/k8s/clusters/c-abc`` + ``/api/v1/pods`` →
    ``/k8s/clusters/c-abc/api/v1/pods``, and + ``/`` → ``/k8s/clusters/c-abc/``.
    """
    if not append_server_path or server_path in ("", "/"):
        return raw_path
    base = server_path if server_path.endswith("/") else server_path + "/"
    return base + raw_path[1:] if raw_path.startswith("/") else base + raw_path


# Go's html.EscapeString-like htmlReplacer in net/http (&#34; and &#39;, not &quot;).
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"})


def redirect_body(method: str, location: str) -> tuple[bytes, str | None]:
    """Body and Content-Type of Go's ``http.Redirect`` 301 for ``method`` (docs/kubectl-proxy.md §3).

    GET gets a one-line HTML link (Go: ``fmt.Fprintln`` of ``…</a>.\\n``, hence ``\\n\\n``),
    HEAD only the Content-Type, every other method neither.
    """
    if method == "GET":
        html = f'<a href="{location.translate(_HTML_ESCAPES)}">Moved Permanently</a>.\n\n'
        return html.encode("utf-8", "surrogateescape"), "text/html; charset=utf-8"
    if method == "HEAD":
        return b"", "text/html; charset=utf-8"
    return b"", None
