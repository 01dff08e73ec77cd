"""Go's ``net/url`` parser and printer, as far as proxy selection needs them.

In: a URL string. Out: a :class:`GoURL` whose fields are those of Go's ``url.URL`` after
``url.Parse`` (Go 1.23), and whose ``str()`` is Go's ``URL.String()``. Proxy selection must
see values the way Go does (docs/go-proxy-selection.md §3): ``http://proxy.example:bad``
fails to parse (the port is checked eagerly, unlike ``urllib.parse``), ``" http://p:3128"``
fails (a space cannot start a scheme and cannot be in a host), ``user:p@ss@proxy`` splits at
the last ``@`` and prints as ``user:p%40ss@proxy``, the scheme is lowercased and the host's
case kept. Components are held as ``str``; bytes that are not UTF-8 ride along as
surrogate escapes so that printing gives back Go's bytes.

Standard library only; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

__all__ = ["GoURL", "hide_userinfo"]

_HOST, _ZONE, _USERINFO, _PATH, _FRAGMENT = range(5)
_HEX = "0123456789abcdefABCDEF"


def _should_escape(c: int, mode: int) -> bool:
    """Go ``url.shouldEscape`` for one byte."""
    ch = chr(c)
    if c < 0x80 and ch.isalnum():
        return False
    if mode in (_HOST, _ZONE) and ch in "!$&'()*+,;=:[]<>\"":
        return False
    if ch in "-_.~":
        return False
    if ch in "$&+,/:;=?@":
        if mode == _PATH:
            return ch == "?"
        if mode == _USERINFO:
            return ch in "@/?:"
        if mode == _FRAGMENT:
            return False
    if mode == _FRAGMENT and ch in "!()*":
        return False
    return True


def _escape(s: str, mode: int) -> str:
    return "".join(f"%{b:02X}" if _should_escape(b, mode) else chr(b) for b in s.encode("utf-8", "surrogateescape"))


def _unescape(s: str, mode: int) -> str:
    """Go ``url.unescape``; raises ``ValueError`` with Go's reason."""
    b = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x25:  # '%'
            if i + 2 >= len(b) or chr(b[i + 1]) not in _HEX or chr(b[i + 2]) not in _HEX:
                raise ValueError(f"invalid URL escape {b[i : i + 3].decode('utf-8', 'replace')!r}")
            v = int(b[i + 1 : i + 3], 16)
            # RFC 3986 §3.2.2: hosts %-encode only non-ASCII bytes; RFC 6874 adds %25.
            if mode == _HOST and v < 0x80 and b[i : i + 3] != b"%25":
                raise ValueError(f"invalid URL escape {b[i : i + 3].decode()!r}")
            if mode == _ZONE and b[i : i + 3] != b"%25" and v != 0x20 and _should_escape(v, _HOST):
                raise ValueError(f"invalid URL escape {b[i : i + 3].decode()!r}")
            out.append(v)
            i += 3
            continue
        if mode in (_HOST, _ZONE) and c < 0x80 and _should_escape(c, mode):
            raise ValueError(f"invalid character {chr(c)!r} in host name")
        out.append(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _valid_encoded(s: str, mode: int) -> bool:
    for b in s.encode("utf-8", "surrogateescape"):
        if chr(b) not in "!$&'()*+,;=:@[]%" and _should_escape(b, mode):
            return False
    return True


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= ch <= "9" for ch in port[1:]))


def _parse_host(host: str) -> str:
    """Go ``url.parseHost``: ``host[:port]`` or ``[ipv6%25zone]:port``, unescaped."""
    if host.startswith("["):
        i = host.rfind("]")
        if i < 0:
            raise ValueError("missing ']' in host")
        if not _valid_optional_port(host[i + 1 :]):
            raise ValueError(f"invalid port {host[i + 1 :]!r} after host")
        zone = host.find("%25", 0, i)
        if zone >= 0:
            return _unescape(host[:zone], _HOST) + _unescape(host[zone:i], _ZONE) + _unescape(host[i:], _HOST)
    else:
        i = host.rfind(":")
        if i >= 0 and not _valid_optional_port(host[i:]):
            raise ValueError(f"invalid port {host[i:]!r} after host")
    return _unescape(host, _HOST)


_USERINFO_OK = re.compile(r"[A-Za-z0-9\-._:~!$&'()*+,;=%@]*")


@dataclass(frozen=True, slots=True)
class GoURL:
    """A URL as Go's ``net/url`` parses it; ``str()`` prints it as Go's ``URL.String()``.

    ``host`` is Go's ``URL.Host`` (with the port); :attr:`hostname` and :attr:`port` are
    ``Hostname()`` and ``Port()``. ``username`` is ``None`` without userinfo, ``password``
    ``None`` when no ``:`` was given; both are percent-decoded, as Go sends them in
    ``Proxy-Authorization: Basic`` (§4). Neither appears in ``repr()``.
    """

    scheme: str = ""
    opaque: str = ""
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    host: str = ""
    path: str = ""
    raw_path: str = ""
    omit_host: bool = False
    force_query: bool = False
    raw_query: str = ""
    fragment: str = ""
    raw_fragment: str = ""

    @classmethod
    def parse(cls, raw: str) -> GoURL:
        """Go ``url.Parse``; raises ``ValueError`` where Go returns an error."""
        rest, _, frag = raw.partition("#")
        if any(ord(ch) < 0x20 or ch == "\x7f" for ch in rest):
            raise ValueError("invalid control character in URL")
        if rest == "*":
            url = cls(path="*")
        else:
            url = cls._parse(rest)
        if frag:
            fragment = _unescape(frag, _FRAGMENT)
            url = replace(url, fragment=fragment, raw_fragment="" if _escape(fragment, _FRAGMENT) == frag else frag)
        return url

    @classmethod
    def _parse(cls, rest: str) -> GoURL:
        scheme = ""
        for i, ch in enumerate(rest):  # getScheme
            if ch.isascii() and ch.isalpha():
                continue
            if ch.isascii() and (ch.isdigit() or ch in "+-."):
                if i == 0:
                    break
                continue
            if ch == ":":
                if i == 0:
                    raise ValueError("missing protocol scheme")
                scheme, rest = rest[:i].lower(), rest[i + 1 :]
            break
        force_query, raw_query = False, ""
        if rest.endswith("?") and rest.count("?") == 1:
            force_query, rest = True, rest[:-1]
        else:
            rest, _, raw_query = rest.partition("?")
        if not rest.startswith("/"):
            if scheme:
                return cls(scheme=scheme, opaque=rest, force_query=force_query, raw_query=raw_query)
            if ":" in rest.partition("/")[0]:
                raise ValueError("first path segment in URL cannot contain colon")
        username = password = None
        host, omit_host = "", False
        if (scheme or not rest.startswith("///")) and rest.startswith("//"):
            authority, slash, path_rest = rest[2:].partition("/")
            rest = slash + path_rest
            at = authority.rfind("@")
            host = _parse_host(authority[at + 1 :])
            if at >= 0:
                userinfo = authority[:at]
                if not _USERINFO_OK.fullmatch(userinfo):
                    raise ValueError("invalid userinfo")
                user, colon, pw = userinfo.partition(":")
                username = _unescape(user, _USERINFO)
                password = _unescape(pw, _USERINFO) if colon else None
        elif scheme and rest.startswith("/"):
            omit_host = True
        path = _unescape(rest, _PATH)
        return cls(
            scheme=scheme,
            username=username,
            password=password,
            host=host,
            path=path,
            raw_path="" if _escape(path, _PATH) == rest else rest,
            omit_host=omit_host,
            force_query=force_query,
            raw_query=raw_query,
        )

    @property
    def hostname(self) -> str:
        """Go ``URL.Hostname()``: the host without port and brackets."""
        return _split_host_port(self.host)[0]

    @property
    def port(self) -> str:
        """Go ``URL.Port()``: the explicit port, or ``""``."""
        return _split_host_port(self.host)[1]

    def __str__(self) -> str:
        return self._string(self.password)

    def redacted(self) -> str:
        """Go ``URL.Redacted()``: the password, if any, replaced by ``xxxxx``."""
        return self._string(None if self.password is None else "xxxxx")

    def display(self) -> str:
        """For messages: :meth:`redacted`, and also credentials that Go left in the path or
        opaque part (``http://u:pw@p:bad`` is re-read as ``http://http://u:pw@p:bad``) hidden."""
        text = self.redacted()
        if "@" in self.opaque + self.path + self.raw_query + self.fragment:
            return hide_userinfo(text)
        return text

    def __repr__(self) -> str:
        return f"GoURL({self.display()!r})"

    def _string(self, password: str | None) -> str:
        out = f"{self.scheme}:" if self.scheme else ""
        if self.opaque:
            out += self.opaque
        else:
            if (self.scheme or self.host or self.username is not None) and not (
                self.omit_host and not self.host and self.username is None
            ):
                if self.host or self.path or self.username is not None:
                    out += "//"
                if self.username is not None:
                    out += _escape(self.username, _USERINFO)
                    if password is not None:
                        out += ":" + _escape(password, _USERINFO)
                    out += "@"
                out += _escape(self.host, _HOST)
            path = self._escaped_path()
            if path and path[0] != "/" and self.host:
                out += "/"
            if not out and ":" in path.partition("/")[0]:
                out += "./"  # RFC 3986 §4.2
            out += path
        if self.force_query or self.raw_query:
            out += "?" + self.raw_query
        if self.fragment:
            out += "#" + self._escaped(self.fragment, self.raw_fragment, _FRAGMENT)
        return out

    def _escaped_path(self) -> str:
        if self.path == "*" and not self.raw_path:
            return "*"
        return self._escaped(self.path, self.raw_path, _PATH)

    @staticmethod
    def _escaped(value: str, raw: str, mode: int) -> str:
        if raw and _valid_encoded(raw, mode):
            try:
                if _unescape(raw, mode) == value:
                    return raw
            except ValueError:
                pass
        return _escape(value, mode)


def _split_host_port(host_port: str) -> tuple[str, str]:
    """Go ``url.splitHostPort`` (lenient, unlike ``net.SplitHostPort``)."""
    host, port = host_port, ""
    colon = host.rfind(":")
    if colon >= 0 and _valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1 :]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def hide_userinfo(text: str) -> str:
    """Text for messages: what looks like userinfo (after the last ``//`` before the last
    ``@``, or from the start) becomes ``xxxxx``."""
    at = text.rfind("@")
    if at < 0:
        return text
    start = text.rfind("//", 0, at)
    return text[: start + 2 if start >= 0 else 0] + "xxxxx" + text[at:]
