"""kproxy.policy.h2_fields: HTTP/1.1 request heads to HTTP/2 fields, responses back."""

from __future__ import annotations

import pytest

from kproxy.errors import UpstreamError
from kproxy.policy.h2_fields import request_fields, response_head


def test_request_fields_pseudo_headers_first_and_connection_specific_ones_dropped() -> None:
    head = (
        b"GET /api/v1/pods?watch=1 HTTP/1.1\r\n"
        b"Host: api.example:6443\r\n"
        b"User-Agent: kubectl/v1.32\r\n"
        b"Connection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Upgrade: h2c\r\n"
        b"TE: gzip\r\n"
        b"Accept: application/json\r\n"
        b"Authorization: Bearer t\r\n"
        b"\r\n"
    )
    assert request_fields(head) == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"api.example:6443"),
        (b":path", b"/api/v1/pods?watch=1"),
        (b"user-agent", b"kubectl/v1.32"),
        (b"accept", b"application/json"),
        (b"authorization", b"Bearer t"),
    ]


def test_te_trailers_is_kept() -> None:
    fields = request_fields(b"GET / HTTP/1.1\r\nHost: h\r\nTE: Trailers\r\n\r\n")
    assert (b"te", b"Trailers") in fields


def test_response_head_canonical_names_as_go_gives_them() -> None:
    status, raw = response_head(
        [(b":status", b"200"), (b"content-type", b"application/json"), (b"audit-id", b"x"), (b"x-dup", b"1")]
    )
    assert status == 200
    assert raw == b"Content-Type: application/json\r\nAudit-Id: x\r\nX-Dup: 1\r\n"


@pytest.mark.parametrize("fields", [[], [(b":status", b"abc")], [(b":status", b"42")]])
def test_a_response_without_a_valid_status_is_an_upstream_error(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(UpstreamError, match="no valid :status"):
        response_head(fields)


@pytest.mark.parametrize(
    "field",
    [
        (b"x-evil", b"a\r\nSet-Cookie: stolen=1"),
        (b"x-evil", b"a\nb"),
        (b"x-evil", b"a\x00b"),
        (b"X-Upper", b"v"),
        (b"bad name", b"v"),
        (b"bad:name", b"v"),
        (b"", b"v"),
    ],
)
def test_a_malformed_field_never_reaches_the_client(field: tuple[bytes, bytes]) -> None:
    with pytest.raises(UpstreamError, match="malformed HTTP/2 response from the API server: invalid header field"):
        response_head([(b":status", b"200"), field])
