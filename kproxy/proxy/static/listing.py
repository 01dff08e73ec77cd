"""A directory listing's HTML, byte for byte as Go's ``dirList`` writes it.

In: the directory's entries as (name as bytes, is a directory) pairs, read by the file
server. Out: the page: entries sorted by name, a directory's name ending in ``/``, each
a link whose href is the name escaped as a URL path and whose text is the name
HTML-escaped.

Pure: no directory is read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["dir_list", "href", "html_escape"]

_HEAD = b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'


def href(name: bytes) -> bytes:
    """Go's ``url.URL{Path: name}.String()``: escape all but RFC 3986 path characters, and
    put ``./`` before a colon in the first segment so it cannot read as a scheme."""
    if name == b"*":
        return name
    escaped = quote(name, safe="$&+,/:;=@").encode("ascii")
    return b"./" + escaped if b":" in escaped.split(b"/", 1)[0] else escaped


def html_escape(text: bytes) -> bytes:  # Go's htmlReplacer
    for c, ref in zip(b"&<>\"'", (b"&amp;", b"&lt;", b"&gt;", b"&#34;", b"&#39;")):
        text = text.replace(bytes([c]), ref)
    return text


def dir_list(entries: Iterable[tuple[bytes, bool]]) -> bytes:
    """Go's dirList body. The caller says what is a directory; Go asks DirEntry.IsDir,
    which does not follow symlinks, so links get no slash."""
    out = [_HEAD]
    for name, is_dir in sorted(entries):
        name += b"/" if is_dir else b""
        out.append(b'<a href="%s">%s</a>\n' % (href(name), html_escape(name)))
    return b"".join(out) + b"</pre>\n"
