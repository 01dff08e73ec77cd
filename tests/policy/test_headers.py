"""kproxy.policy.headers: the relayed response head, by regex on bytes and by the per-header
loop, must agree on every head llhttp accepts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kproxy.policy.headers import parse_header_lines, response_lines, response_lines_raw

NGINX = (
    b"Server: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 14:00:00 GMT\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2813\r\nConnection: keep-alive\r\nAudit-Id: x\r\n"
)


def both(raw: bytes) -> tuple[bytes, int | None, bool]:
    fast = response_lines_raw(raw)
    assert fast == response_lines(parse_header_lines(raw))
    return fast


def test_hop_by_hop_and_length_are_cut_the_rest_kept_in_order() -> None:
    assert both(NGINX) == (
        b"Server: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 14:00:00 GMT\r\n"
        b"Content-Type: application/json\r\nAudit-Id: x\r\n",
        2813,
        True,
    )


def test_names_that_only_start_like_hop_by_hop_ones_stay() -> None:
    assert both(b"Teapot: 1\r\nDated: 2\r\nUpgrades: 3\r\nContent-Length:7\r\n") == (
        b"Teapot: 1\r\nDated: 2\r\nUpgrades: 3\r\n",
        7,
        False,
    )


def test_headers_named_by_connection_go_too() -> None:
    raw = b"Connection: X-Secret, close\r\nX-Secret: 1\r\nX-Kept: 2\r\nTransfer-Encoding: chunked\r\n"
    assert both(raw) == (b"X-Kept: 2\r\n", None, False)


def test_other_servers_cors_headers_never_pass() -> None:
    # kproxy alone grants cross-origin reads (docs/browsers.md §5).
    raw = (
        b"Content-Type: text/html\r\nAccess-Control-Allow-Origin: *\r\naccess-control-allow-credentials: true\r\n"
        b"ACCESS-CONTROL-EXPOSE-HEADERS: X\r\nAccess-Controlled: kept\r\nContent-Length: 1\r\n"
    )
    assert both(raw) == (b"Content-Type: text/html\r\nAccess-Controlled: kept\r\n", 1, False)
    listing = b"Connection: X-A\r\nX-A: 1\r\nAccess-Control-Allow-Origin: *\r\nX-B: 2\r\n"
    assert both(listing) == (b"X-B: 2\r\n", None, False)


def test_any_case_and_an_empty_head() -> None:
    assert both(b"CONNECTION: keep-alive\r\nkeep-alive: timeout=5\r\ncontent-length: 0\r\n") == (b"", 0, False)
    assert both(b"") == (b"", None, False)


NAMES = st.sampled_from(
    [
        b"Connection",
        b"Keep-Alive",
        b"TE",
        b"Trailer",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Proxy-Authenticate",
        b"Content-Length",
        b"Date",
        b"X-A",
        b"Te-Not",
        b"content-type",
        b"Access-Control-Allow-Origin",
    ]
)
VALUES = st.sampled_from([b"keep-alive", b"close", b"x-a", b"5", b"upgrade", b"chunked", b"Mon", b""])


@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_regex_and_loop_agree(pairs: list[tuple[bytes, bytes]]) -> None:
    pairs = [(n, v if n.lower() != b"content-length" else b"12") for n, v in pairs]
    both(b"".join(b"%b: %b\r\n" % pair for pair in pairs))
