"""Range requests (RFC 9110 §14) as Go's ``serveContent`` answers them.

In: the Range header left after If-Range (:mod:`kproxy.proxy.static.conditional`), the
file's size and its Content-Type. Out: the ``(start, length)`` ranges to send, or the
text of Go's 416 answer; for several ranges, the ``multipart/byteranges`` framing (§14.6)
byte for byte as Go's ``mime/multipart`` writes it. One range becomes a 206 with
Content-Range, several a multipart 206, none that overlap the file a 416.

Pure: no file is touched; the boundary is the only randomness.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["NO_OVERLAP", "Part", "multipart", "parse_range", "ranges_to_send"]

NO_OVERLAP = "invalid range: failed to overlap"
_BLANKS = " \t\r\n"  # Go's textproto.TrimString
_INT64 = re.compile(r"([+-]?)0*([0-9]{0,19})")

Part = tuple[bytes, int, int]  # (part header, offset, count)


def _int64(s: str) -> int | None:  # Go's strconv.ParseInt(s, 10, 64)
    m = _INT64.fullmatch(s)
    n = int(m[1] + (m[2] or "0")) if m and s.lstrip("+-") else None
    return n if n is not None and -(2**63) <= n < 2**63 else None


def parse_range(spec: str, size: int) -> list[tuple[int, int]] | str:
    """Go's parseRange (RFC 9110 §14.1.2): (start, length) pairs, or the 416 error text."""
    if not spec:
        return []
    if not spec.startswith("bytes="):
        return "invalid range"
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for item in spec[6:].split(","):
        first, dash, last = (x.strip(_BLANKS) for x in item.strip(_BLANKS).partition("-"))
        if not (first or dash):
            continue
        if not dash:
            return "invalid range"
        if not first:  # "-N": the last N bytes
            n = _int64(last) if last[:1] not in ("", "-") else None
            if n is None:
                return "invalid range"
            ranges.append((size - min(n, size), min(n, size)))
            continue
        start = _int64(first)
        if start is None or start < 0:
            return "invalid range"
        if start >= size:  # checked before the end is even parsed, as Go does
            no_overlap = True
            continue
        end = _int64(last) if last else size - 1
        if end is None or start > end:
            return "invalid range"
        ranges.append((start, min(end, size - 1) - start + 1))
    return NO_OVERLAP if no_overlap and not ranges else ranges


def ranges_to_send(spec: str, size: int) -> list[tuple[int, int]] | str:
    """What serveContent makes of parseRange: ``[]`` means the whole file (200), a string
    is the 416 text (:data:`NO_OVERLAP` also gets ``Content-Range: bytes */size``)."""
    ranges = parse_range(spec, size)
    if ranges == NO_OVERLAP and size == 0:
        return []  # Go: a Range on an empty file gets the (empty) file, 200
    if isinstance(ranges, str):
        return ranges
    if sum(n for _, n in ranges) > size:
        return []  # Go: more bytes than the file has is an attack; send it once
    return ranges


def multipart(ranges: list[tuple[int, int]], size: int, ctype: str) -> tuple[tuple[Part, ...], bytes, str]:
    """RFC 9110 §14.6 multipart/byteranges, byte for byte as Go's mime/multipart writes
    it: (part header, offset, count) per range, the trailer and the Content-Type."""
    boundary = secrets.token_hex(30)
    parts = []
    for i, (start, n) in enumerate(ranges):
        head = f"\r\n--{boundary}\r\n" if i else f"--{boundary}\r\n"
        head += f"Content-Range: bytes {start}-{start + n - 1}/{size}\r\n"
        parts.append(((head + f"Content-Type: {ctype}\r\n\r\n").encode(), start, n))
    trailer = f"\r\n--{boundary}--\r\n".encode()
    return tuple(parts), trailer, f"multipart/byteranges; boundary={boundary}"
