"""kproxy.policy.request_checks: request targets and Host, as Go's server reads them."""

from __future__ import annotations

import pytest

from kproxy.errors import BadRequest, MalformedRequest
from kproxy.policy.request_checks import plain_host, request_host, split_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/v1/pods", ("/api/v1/pods", None, None)),
        ("/api?", ("/api", "", None)),
        ("/api?watch=1&x=%20", ("/api", "watch=1&x=%20", None)),
        ("http://example:8001/api?x", ("/api", "x", "example:8001")),
        ("HTTPS://h", ("/", None, "h")),
    ],
)
def test_targets(target: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", ["*", "api", "ftp://h/x", "h:80"])
def test_targets_that_are_neither_form(target: str) -> None:
    with pytest.raises(BadRequest, match="must start with /") as info:
        split_target(target)
    assert not isinstance(info.value, MalformedRequest)


@pytest.mark.parametrize(
    ("headers", "version", "expected"),
    [
        ([(b"Host", b"localhost:8001")], (1, 1), "localhost:8001"),
        ([(b"HOST", b"[::1]:8001")], (1, 1), "[::1]:8001"),
        ([], (1, 0), ""),  # HTTP/1.0 may omit it
    ],
)
def test_hosts(headers: list[tuple[bytes, bytes]], version: tuple[int, int], expected: str) -> None:
    assert request_host(headers, version) == expected


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "missing required Host header"),
        ([(b"Host", b"a"), (b"host", b"b")], "too many Host headers"),
        ([(b"Host", b"a b")], "malformed Host header 'a b'"),
        ([(b"Host", b"a/b")], "malformed Host header 'a/b'"),
        ([(b"Host", b"a\\b")], "malformed Host header"),
    ],
)
def test_hosts_go_refuses(headers: list[tuple[bytes, bytes]], message: str) -> None:
    with pytest.raises(MalformedRequest, match=message.replace("\\", "\\\\")):
        request_host(headers, (1, 1))


@pytest.mark.parametrize(
    ("headers", "version", "expected"),
    [
        ([(b"Host", b"localhost:8001"), (b"Accept", b"*/*")], (1, 1), "localhost:8001"),
        ([], (1, 0), ""),
        ([(b"Host", b"a"), (b"Connection", b"keep-alive")], (1, 1), "a"),
        # What request_host refuses: the ordinary path answers it.
        ([], (1, 1), None),
        ([(b"Host", b"a"), (b"host", b"b")], (1, 1), None),
        ([(b"Host", b"a b")], (1, 1), None),
        # Upgrades (kubectl's substring test) and browsers' requests take the ordinary path.
        ([(b"Host", b"a"), (b"connection", b"keep-alive, Upgrade")], (1, 1), None),
        ([(b"Host", b"a"), (b"Origin", b"http://a")], (1, 1), None),
        ([(b"ORIGIN", b"null"), (b"Host", b"a")], (1, 1), None),
        ([(b"Host", b"a"), (b"Origins", b"x"), (b"Orig-n", b"x")], (1, 1), "a"),
    ],
)
def test_plain_host(headers: list[tuple[bytes, bytes]], version: tuple[int, int], expected: str | None) -> None:
    assert plain_host(headers, version) == expected
