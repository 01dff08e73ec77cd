"""kproxy.proxy.static.conditional: RFC 9110 §13 as Go's checkPreconditions and checkIfRange
decide it, as tables. The file was modified at MTIME; kproxy, like Go's FileServer, sends
no ETag."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from kproxy.proxy.static.conditional import not_modified_since, parse_http_date, preconditions, range_header

MTIME = 1_700_000_000
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
OLDER, NEWER = "Tue, 14 Nov 2023 22:13:19 GMT", "Tue, 14 Nov 2023 22:13:21 GMT"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (LAST_MODIFIED, MTIME),
        ("Tuesday, 14-Nov-23 22:13:20 GMT", MTIME),
        ("Tue Nov 14 22:13:20 2023", MTIME),
        ("", None),
        ("yesterday", None),
        # RFC 9110 §5.6.7's own example in its three formats
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777),
        ("Sun Nov  6 08:49:37 1994", 784111777),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ("Tue, 14 Foo 2023 22:13:20 GMT", None),
    ],
)
def test_parse_http_date(value: str, seconds: int | None) -> None:
    assert parse_http_date(value) == seconds


@pytest.mark.parametrize(
    ("value", "mtime", "expected"),
    [
        (LAST_MODIFIED, MTIME, True),
        (NEWER, MTIME, True),
        (OLDER, MTIME, False),
        ("", MTIME, False),
        ("junk", MTIME, False),
        (LAST_MODIFIED, None, False),  # an unknown modification time is never "not modified"
    ],
)
def test_not_modified_since(value: str, mtime: int | None, expected: bool) -> None:
    assert not_modified_since(value, mtime) is expected


@pytest.mark.parametrize(
    ("method", "headers", "mtime", "status"),
    [
        ("GET", {}, MTIME, None),
        # §13.1.3 If-Modified-Since: GET and HEAD only, a date at or after the file's
        ("GET", {"If-Modified-Since": LAST_MODIFIED}, MTIME, 304),
        ("GET", {"If-Modified-Since": NEWER}, MTIME, 304),
        ("HEAD", {"If-Modified-Since": LAST_MODIFIED}, MTIME, 304),
        ("GET", {"If-Modified-Since": OLDER}, MTIME, None),
        ("GET", {"If-Modified-Since": "not a date"}, MTIME, None),
        ("POST", {"If-Modified-Since": LAST_MODIFIED}, MTIME, None),
        ("GET", {"If-Modified-Since": LAST_MODIFIED}, None, None),
        # §13.1.4 If-Unmodified-Since: any method, a date before the file's fails
        ("GET", {"If-Unmodified-Since": OLDER}, MTIME, 412),
        ("POST", {"If-Unmodified-Since": OLDER}, MTIME, 412),
        ("GET", {"If-Unmodified-Since": LAST_MODIFIED}, MTIME, None),
        ("GET", {"If-Unmodified-Since": NEWER}, MTIME, None),
        ("GET", {"If-Unmodified-Since": "junk"}, MTIME, None),
        ("GET", {"If-Unmodified-Since": OLDER}, None, None),
        # §13.1.1 If-Match: only "*" can match; it replaces If-Unmodified-Since
        ("GET", {"If-Match": "*"}, MTIME, None),
        ("GET", {"If-Match": '"abc"'}, MTIME, 412),
        ("GET", {"If-Match": 'W/"abc"'}, MTIME, 412),
        ("GET", {"If-Match": '"abc", *'}, MTIME, None),
        ("GET", {"If-Match": " , *"}, MTIME, None),
        ("GET", {"If-Match": "garbage, *"}, MTIME, 412),  # scanning stops at the garbage
        ("GET", {"If-Match": "*", "If-Unmodified-Since": OLDER}, MTIME, None),
        ("GET", {"If-Match": '"abc"', "If-None-Match": "*"}, MTIME, 412),
        # §13.1.2 If-None-Match: "*" matches; it replaces If-Modified-Since
        ("GET", {"If-None-Match": "*"}, MTIME, 304),
        ("HEAD", {"If-None-Match": "*"}, MTIME, 304),
        ("POST", {"If-None-Match": "*"}, MTIME, 412),
        ("GET", {"If-None-Match": 'W/"x", *'}, MTIME, 304),
        ("GET", {"If-None-Match": '"abc", W/"def"'}, MTIME, None),
        ("GET", {"If-None-Match": '"abc"', "If-Modified-Since": LAST_MODIFIED}, MTIME, None),
        ("GET", {"If-None-Match": "garbage", "If-Modified-Since": LAST_MODIFIED}, MTIME, None),
        # §13.2.2's order: a failed If-Unmodified-Since wins over If-None-Match
        ("GET", {"If-Unmodified-Since": OLDER, "If-None-Match": "*"}, MTIME, 412),
    ],
)
def test_preconditions(method: str, headers: Mapping[str, str], mtime: int | None, status: int | None) -> None:
    assert preconditions(method, headers, mtime) == status


@pytest.mark.parametrize(
    ("method", "headers", "kept"),
    [
        ("GET", {"Range": "bytes=0-4"}, True),
        ("GET", {}, False),
        ("GET", {"If-Range": LAST_MODIFIED}, False),  # nothing to keep
        # §13.1.5: a date must be the file's Last-Modified exactly, in any of the three formats
        ("GET", {"Range": "bytes=0-4", "If-Range": LAST_MODIFIED}, True),
        ("HEAD", {"Range": "bytes=0-4", "If-Range": LAST_MODIFIED}, True),
        ("GET", {"Range": "bytes=0-4", "If-Range": "Tuesday, 14-Nov-23 22:13:20 GMT"}, True),
        ("GET", {"Range": "bytes=0-4", "If-Range": "Tue Nov 14 22:13:20 2023"}, True),
        ("GET", {"Range": "bytes=0-4", "If-Range": OLDER}, False),
        ("GET", {"Range": "bytes=0-4", "If-Range": NEWER}, False),
        ("GET", {"Range": "bytes=0-4", "If-Range": "garbage"}, False),
        # an entity-tag never matches: no ETag is sent
        ("GET", {"Range": "bytes=0-4", "If-Range": '"some-etag"'}, False),
        ("GET", {"Range": "bytes=0-4", "If-Range": 'W/"some-etag"'}, False),
        # checkIfRange is for GET and HEAD: other methods keep the Range
        ("POST", {"Range": "bytes=0-4", "If-Range": OLDER}, True),
    ],
)
def test_range_header(method: str, headers: Mapping[str, str], kept: bool) -> None:
    assert range_header(method, headers, MTIME) == (headers["Range"] if kept else "")
