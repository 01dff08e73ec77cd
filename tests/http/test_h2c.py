"""kproxy.http.h2c: which offers are h2c only, and the head without the offer."""

from __future__ import annotations

import pytest

from kproxy.http.h2c import only_h2c, without_h2c


@pytest.mark.parametrize(
    ("headers", "only"),
    [
        ([(b"Upgrade", b"h2c")], True),
        ([(b"upgrade", b"H2C")], True),
        ([(b"Upgrade", b"h2c"), (b"Upgrade", b" h2c ")], True),
        ([(b"Upgrade", b"h2c, websocket")], False),
        ([(b"Upgrade", b"websocket")], False),
        ([(b"Connection", b"Upgrade")], False),
        ([], False),
    ],
)
def test_only_h2c(headers: list[tuple[bytes, bytes]], only: bool) -> None:
    assert only_h2c(headers) is only


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMA\r\nAccept: */*\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
        ),
        (
            b"POST / HTTP/1.1\r\nconnection: keep-alive,upgrade\r\nupgrade:h2c\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nconnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        ),
    ],
)
def test_without_h2c(head: bytes, expected: bytes) -> None:
    assert without_h2c(head) == expected
