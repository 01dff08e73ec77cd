"""kproxy.proxy.static.byte_ranges: Go's parseRange, serveContent's use of it and the
multipart/byteranges framing (RFC 9110 §14), as tables."""

from __future__ import annotations

import re

import pytest

from kproxy.proxy.static.byte_ranges import NO_OVERLAP, multipart, parse_range, ranges_to_send

INVALID = "invalid range"


@pytest.mark.parametrize(
    ("spec", "size", "ranges"),
    [
        ("", 10, []),
        ("bytes=", 10, []),
        ("bytes=0-0", 10, [(0, 1)]),
        ("bytes=+2-3", 10, [(2, 2)]),
        ("bytes=-0", 10, [(10, 0)]),
        ("bytes=0-,", 10, [(0, 10)]),
        ("bytes=1-2,4-", 10, [(1, 2), (4, 6)]),
        ("bytes=10-", 10, "invalid range: failed to overlap"),
        ("bytes=10-x", 10, "invalid range: failed to overlap"),
        ("bytes=3", 10, "invalid range"),
        ("bytes=--1", 10, "invalid range"),
        ("bytes=1-2-3", 10, "invalid range"),
        ("bytes=99999999999999999999-", 10, "invalid range"),
        ("bytes=000000000000000000001-1", 10, [(1, 1)]),
        # the unit: exactly "bytes=", nothing before it
        ("Bytes=0-1", 10, INVALID),
        (" bytes=0-1", 10, INVALID),
        ("bytes 0-1", 10, INVALID),
        # blanks (textproto.TrimString) around items and around each number; empty items skipped
        ("bytes=\t1-2\t", 10, [(1, 2)]),
        ("bytes=1 - 2", 10, [(1, 2)]),
        ("bytes=,,0-1, ,2-3,,", 10, [(0, 2), (2, 2)]),
        ("bytes=1-2 3", 10, INVALID),
        # ends are clamped to the file; starts must lie within it
        ("bytes=5-", 10, [(5, 5)]),
        ("bytes=9-100", 10, [(9, 1)]),
        ("bytes=0-9223372036854775807", 10, [(0, 10)]),  # the largest int64 end
        ("bytes=0-9223372036854775808", 10, INVALID),  # past int64: ParseInt fails
        ("bytes=5-,20-", 10, [(5, 5)]),  # one overlapping range is enough
        ("bytes=20-,30-", 10, NO_OVERLAP),
        ("bytes=0-1", 0, NO_OVERLAP),
        # suffixes: the last N bytes, at most the whole file
        ("bytes=-5", 3, [(0, 3)]),
        ("bytes=-+5", 10, [(5, 5)]),
        ("bytes=-1", 0, [(0, 0)]),
        ("bytes=-", 10, INVALID),
        ("bytes=-1-2", 10, INVALID),
        ("bytes=-9223372036854775808", 10, INVALID),
        # a start after its end, or numbers Go's strconv.ParseInt(s, 10, 64) refuses
        ("bytes=5-1", 10, INVALID),
        ("bytes=1--2", 10, INVALID),
        ("bytes=-1-", 10, INVALID),
        ("bytes=0x10-", 10, INVALID),
        ("bytes=1_0-", 10, INVALID),
        ("bytes=x-1", 10, INVALID),
        # overlapping ranges are not merged
        ("bytes=0-4,2-6", 10, [(0, 5), (2, 5)]),
    ],
)
def test_parse_range(spec: str, size: int, ranges: list[tuple[int, int]] | str) -> None:
    assert parse_range(spec, size) == ranges


@pytest.mark.parametrize(
    ("spec", "size", "ranges"),
    [
        ("", 14, []),
        ("bytes=0-4", 14, [(0, 5)]),
        ("bytes=0-1,-3", 14, [(0, 2), (11, 3)]),
        ("bytes=14-", 14, NO_OVERLAP),
        ("items=0-1", 14, INVALID),
        # an empty file: a range that cannot overlap gets the (empty) file, 200
        ("bytes=0-10", 0, []),
        ("bytes=5-1", 0, []),  # the start is checked first: "no overlap", not "invalid"
        ("bytes=x-", 0, INVALID),
        # more bytes asked for than the file has: the whole file, once
        ("bytes=0-,0-", 14, []),
        ("bytes=0-5,2-7", 10, []),
        ("bytes=0-4,2-6", 10, [(0, 5), (2, 5)]),  # exactly the size: still ranges
    ],
)
def test_ranges_to_send(spec: str, size: int, ranges: list[tuple[int, int]] | str) -> None:
    assert ranges_to_send(spec, size) == ranges


def test_multipart_framing() -> None:
    ctype = "text/plain; charset=utf-8"
    parts, trailer, content_type = multipart([(0, 2), (11, 3)], 14, ctype)
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{60})", content_type)
    assert m is not None
    b = m[1]
    assert parts == (
        (f"--{b}\r\nContent-Range: bytes 0-1/14\r\nContent-Type: {ctype}\r\n\r\n".encode(), 0, 2),
        (f"\r\n--{b}\r\nContent-Range: bytes 11-13/14\r\nContent-Type: {ctype}\r\n\r\n".encode(), 11, 3),
    )
    assert trailer == f"\r\n--{b}--\r\n".encode()


def test_multipart_boundaries_differ() -> None:
    first, second = (multipart([(0, 1), (1, 1)], 2, "x/y")[2] for _ in range(2))
    assert first != second
