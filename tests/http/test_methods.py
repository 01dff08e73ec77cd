"""kproxy.http.methods: tokens and where the last request in a read begins."""

from __future__ import annotations

import pytest

from kproxy.http.methods import STAND_IN, is_token, message_start, method_token

GET = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
LENGTH = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET "
CHUNKED = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nGET\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "token"),
    [(b"GET", True), (b"post", True), (b"X-Custom.1~", True), (b"", False), (b"G T", False), (b"G\tT", False),
     (b"G(T", False), (b"\xe9", False), (b"a/b", False)],
)  # fmt: skip
def test_is_token(data: bytes, token: bool) -> None:
    assert is_token(data) is token


def test_method_token() -> None:
    assert method_token(b"post /x HTTP/1.1") == (b"post", 4)
    assert method_token(b"pos") is None
    assert method_token(b" GET /") == (b"", 0)


@pytest.mark.parametrize(
    ("data", "start"),
    [
        (b"", None),
        (b"\r\n", None),
        (b"post /", 0),
        (b"\r\n\r\npost /", 4),
        (GET + b"post /", len(GET)),
        (GET + GET, len(GET)),
        (GET + b"\r\nG", len(GET) + 2),
        (LENGTH + b"x", len(LENGTH)),  # a body that looks like a request is not one
        (CHUNKED + b"mkcol", len(CHUNKED)),
    ],
)
def test_message_start(data: bytes, start: int | None) -> None:
    assert message_start(data) == start


def test_the_stand_in_is_a_method_llhttp_knows() -> None:
    import httptools

    class Head:
        method = b""

        def on_headers_complete(self) -> None:
            Head.method = parser.get_method()

    parser = httptools.HttpRequestParser(Head())
    parser.feed_data(STAND_IN + b" / HTTP/1.1\r\n\r\n")
    assert Head.method == STAND_IN
