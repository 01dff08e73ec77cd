"""kproxy.http.framing: the bytes of answers, as tables (RFC 9112 §6)."""

from __future__ import annotations

import pytest

from kproxy.http.framing import LAST_CHUNK, chunk, complete_answer, stream_head

DATE = b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
LINES = b"Content-Type: text/plain\r\n"


@pytest.mark.parametrize(
    ("status", "body", "length", "keep", "version", "head_only", "expected"),
    [
        (200, b"hi", None, True, (1, 1), False, b"HTTP/1.1 200 OK\r\n%b%bContent-Length: 2\r\n\r\nhi"),
        (200, b"hi", None, False, (1, 1), False,
         b"HTTP/1.1 200 OK\r\n%b%bConnection: close\r\nContent-Length: 2\r\n\r\nhi"),
        # An HTTP/1.0 client kept alive is told so.
        (200, b"hi", None, True, (1, 0), False,
         b"HTTP/1.1 200 OK\r\n%b%bConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"),
        # HEAD: the length of the body that would be, no body.
        (200, b"hello", None, True, (1, 1), True, b"HTTP/1.1 200 OK\r\n%b%bContent-Length: 5\r\n\r\n"),
        (200, b"", 42, True, (1, 1), True, b"HTTP/1.1 200 OK\r\n%b%bContent-Length: 42\r\n\r\n"),
        # 204, 304 and 1xx: no length, no body, whatever the handler gave.
        (204, b"dropped", None, True, (1, 1), False, b"HTTP/1.1 204 No Content\r\n%b%b\r\n"),
        (304, b"dropped", 7, True, (1, 1), False, b"HTTP/1.1 304 Not Modified\r\n%b%b\r\n"),
        (103, b"", None, True, (1, 1), False, b"HTTP/1.1 103 Early Hints\r\n%b%b\r\n"),
        # Codes Go has no text for.
        (599, b"x", None, True, (1, 1), False, b"HTTP/1.1 599 status code 599\r\n%b%bContent-Length: 1\r\n\r\nx"),
    ],
)  # fmt: skip
def test_complete_answers(
    status: int, body: bytes, length: int | None, keep: bool, version: tuple[int, int], head_only: bool, expected: bytes
) -> None:
    data = complete_answer(status, LINES, body, length, DATE, keep, version, head_only)
    assert data == expected % (LINES, DATE)


def test_a_handler_date_replaces_the_servers() -> None:
    data = complete_answer(200, DATE, b"", None, b"", True, (1, 1), False)
    assert data.count(b"Date:") == 1


@pytest.mark.parametrize(
    ("status", "length", "keep", "version", "head_only", "framing", "chunked", "stays"),
    [
        (200, None, True, (1, 1), False, b"Transfer-Encoding: chunked\r\n", True, True),
        (200, 10, True, (1, 1), False, b"Content-Length: 10\r\n", False, True),
        # HTTP/1.0 has no chunking: the body ends with the connection.
        (200, None, True, (1, 0), False, b"Connection: close\r\n", False, False),
        (200, 10, True, (1, 0), False, b"Connection: keep-alive\r\nContent-Length: 10\r\n", False, True),
        (200, None, True, (1, 1), True, b"", False, True),  # HEAD without a length: nothing
        (204, None, True, (1, 1), False, b"", False, True),
        (304, None, True, (1, 1), False, b"", False, True),
        (200, None, False, (1, 1), False, b"Connection: close\r\nTransfer-Encoding: chunked\r\n", True, False),
    ],
)  # fmt: skip
def test_stream_heads(
    status: int,
    length: int | None,
    keep: bool,
    version: tuple[int, int],
    head_only: bool,
    framing: bytes,
    chunked: bool,
    stays: bool,
) -> None:
    head, how = stream_head(status, b"", length=length, date_line=b"", keep=keep, version=version, head_only=head_only)
    assert head.endswith(framing + b"\r\n") and head.count(b"\r\n\r\n") == 1
    assert (how.chunked, how.keep) == (chunked, stays)
    assert how.head_only == (head_only or status in (204, 304))


@pytest.mark.parametrize(
    ("data", "wire"),
    [(b"a", b"1\r\na\r\n"), (b"x" * 255, b"ff\r\n" + b"x" * 255 + b"\r\n"), (b"\r\n", b"2\r\n\r\n\r\n")],
)
def test_chunks(data: bytes, wire: bytes) -> None:
    assert chunk(data) == wire
    assert LAST_CHUNK == b"0\r\n\r\n"
