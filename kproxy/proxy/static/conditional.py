"""Conditional requests (RFC 9110 §13) as Go's ``serveContent`` evaluates them.

In: the request method, its headers and the file's modification time in whole seconds
(Last-Modified's precision; None when unknown). Out: the status a precondition decides
(304 or 412, in §13.2.2's order, as Go's ``checkPreconditions``), whether a listing is
not modified, and the Range header left once If-Range has been checked (§13.1.5, Go's
``checkIfRange``).

Go's FileServer, and so kproxy, sends no ETag: an If-Match or If-None-Match entity-tag
can only match through ``*``, and an If-Range entity-tag never does.

Pure: headers in, a decision out.

Deviation: If-(Un)Modified-Since dates parse a little more leniently than Go's
``http.ParseTime`` (numeric zones, a missing weekday).
"""

from __future__ import annotations

import calendar
import email.utils
import re
from collections.abc import Mapping

__all__ = ["GET_HEAD", "not_modified_since", "parse_http_date", "preconditions", "range_header"]

GET_HEAD = ("GET", "HEAD")

# Go's scanETag and its If-Match/If-None-Match loop: blanks, commas and entity-tags
# (§8.8.3) until "*".
_ETAG = re.compile(r'[ \t\r\n]*(?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*"')
_STAR = re.compile(r'(?:[ \t\r\n,]|(?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*")*\*')


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP date (RFC 9110 §5.6.7), None if it is none.

    Go's http.ParseTime accepts IMF-fixdate, RFC 850 and asctime dates; so does this,
    a little more leniently (numeric zones, a missing weekday)."""
    try:
        parsed = email.utils.parsedate_tz(value)
    except (IndexError, ValueError):  # old Pythons raise on some malformed dates
        return None
    return None if parsed is None else calendar.timegm(parsed[:6]) - (parsed[9] or 0)


def not_modified_since(value: str, mtime: int | None) -> bool:
    """``mtime <= date`` for If-Modified-Since; False when either is unknown."""
    when = parse_http_date(value) if value and mtime is not None else None
    return when is not None and mtime is not None and mtime <= when


def preconditions(method: str, headers: Mapping[str, str], mtime: int | None) -> int | None:
    """304 or 412 when a precondition decides the answer (``mtime``: whole seconds)."""
    if im := headers.get("If-Match", ""):  # §13.1.1
        if not _STAR.match(im):
            return 412
    elif (ius := headers.get("If-Unmodified-Since", "")) and mtime is not None:  # §13.1.4
        when = parse_http_date(ius)
        if when is not None and mtime > when:
            return 412
    if inm := headers.get("If-None-Match", ""):  # §13.1.2; then IMS is not looked at
        if _STAR.match(inm):
            return 304 if method in GET_HEAD else 412
    elif method in GET_HEAD and not_modified_since(headers.get("If-Modified-Since", ""), mtime):
        return 304  # §13.1.3
    return None


def range_header(method: str, headers: Mapping[str, str], mtime: int) -> str:
    """Range, dropped when If-Range fails (§13.1.5, Go's checkIfRange): an entity-tag
    never matches, a date must equal ``mtime`` exactly, anything else fails."""
    rng, if_range = headers.get("Range", ""), headers.get("If-Range", "")
    if not rng or not if_range or method not in GET_HEAD:
        return rng
    if _ETAG.match(if_range):
        return ""
    return rng if parse_http_date(if_range) == mtime else ""
