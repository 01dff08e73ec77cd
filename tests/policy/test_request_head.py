"""kproxy.policy.request_head: the head sent upstream for a client's head, as tables.

The rules are httputil.ReverseProxy's as kubectl uses it (docs/kubectl-proxy.md §6.2, §8).
"""

from __future__ import annotations

import pytest

from kproxy.policy.request_head import HeadTemplate, request_head

T = HeadTemplate(
    host_header=b"api:6443",
    impersonation=b"Impersonate-User: jane\r\n",
    user_agent=b"User-Agent: kproxy/test\r\n",
)
AUTH = b"Authorization: Bearer secret\r\n"


def head(
    raw: list[tuple[bytes, bytes]],
    *,
    method: str = "GET",
    upgrade: bool = False,
    client: str | None = "10.0.0.9",
    template: HeadTemplate = T,
    impersonate: bytes | None = None,
) -> tuple[list[bytes], bool, bool]:
    built = request_head(
        template,
        method,
        b"/api/v1/pods?limit=1",
        raw,
        upgrade=upgrade,
        auth_line=AUTH,
        client=client,
        impersonate=impersonate,
    )
    assert built.data.endswith(b"\r\n\r\n")
    return built.data[:-4].split(b"\r\n"), built.has_body, built.chunked


def test_a_plain_get() -> None:
    lines, has_body, chunked = head([(b"host", b"127.0.0.1:8001"), (b"accept", b"application/json")])
    assert lines == [
        b"GET /api/v1/pods?limit=1 HTTP/1.1",
        b"Host: api:6443",
        b"Accept: application/json",
        b"Authorization: Bearer secret",
        b"Impersonate-User: jane",
        b"User-Agent: kproxy/test",
        b"X-Forwarded-For: 10.0.0.9",
    ]
    assert (has_body, chunked) == (False, False)


@pytest.mark.parametrize(
    ("raw", "present", "absent"),
    [
        # The client's own credential passes untouched; none is added.
        ([(b"Authorization", b"Bearer mine")], [b"Authorization: Bearer mine"], [b"Bearer secret"]),
        # A client impersonating keeps its own set only (client-go).
        ([(b"Impersonate-User", b"bob")], [b"Impersonate-User: bob"], [b"Impersonate-User: jane"]),
        ([(b"User-Agent", b"kubectl/v1.32")], [b"User-Agent: kubectl/v1.32"], [b"User-Agent: kproxy/test"]),
        # Hop-by-hop headers and those Connection lists are dropped.
        ([(b"Connection", b"X-Secret"), (b"X-Secret", b"1"), (b"Keep-Alive", b"5")], [], [b"X-Secret", b"Keep-Alive"]),
        ([(b"Proxy-Authorization", b"Basic x"), (b"Upgrade", b"h2c")], [], [b"Proxy-Authorization", b"Upgrade"]),
        # TE: only "trailers" survives, re-added canonically.
        ([(b"TE", b"trailers, deflate")], [b"Te: trailers"], [b"deflate"]),
        # Expect is answered by kproxy itself.
        ([(b"Expect", b"100-continue")], [], [b"Expect"]),
        # Names go out in Go's canonical form.
        ([(b"x-dup", b"1"), (b"X-DUP", b"2")], [b"X-Dup: 1", b"X-Dup: 2"], []),
        # X-Forwarded-For: the chain, then the client.
        (
            [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
            [b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9"],
            [],
        ),
    ],
)  # fmt: skip
def test_header_rules(raw: list[tuple[bytes, bytes]], present: list[bytes], absent: list[bytes]) -> None:
    data = b"\r\n".join(head([(b"Host", b"h"), *raw])[0])
    for line in present:
        assert line in data
    for text in absent:
        assert text not in data


@pytest.mark.parametrize(
    ("raw", "has_body", "chunked", "framing"),
    [
        ([(b"Content-Length", b"5")], True, False, b"Content-Length: 5"),
        ([(b"Content-Length", b"0")], False, False, b"Content-Length: 0"),
        ([(b"Transfer-Encoding", b"chunked")], True, True, b"Transfer-Encoding: chunked"),
        ([], False, False, None),
    ],
)
def test_framing_is_readded_last(
    raw: list[tuple[bytes, bytes]], has_body: bool, chunked: bool, framing: bytes | None
) -> None:
    lines, body, is_chunked = head(raw, method="POST")
    assert (body, is_chunked) == (has_body, chunked)
    assert lines[-1] == framing if framing else not any(b"Content-Length" in x or b"Transfer" in x for x in lines)


def test_an_upgrade_keeps_the_clients_connection_headers() -> None:
    raw = [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1"), (b"Content-Length", b"0"), (b"Keep-Alive", b"1")]
    lines, _, _ = head(raw, method="POST", upgrade=True)
    assert b"Connection: Upgrade" in lines and b"Upgrade: SPDY/3.1" in lines and b"Content-Length: 0" in lines
    assert not any(line.startswith(b"Keep-Alive") for line in lines)


def test_unix_socket_clients_pass_the_chain_unchanged_and_ipv4_mapped_peers_are_unmapped() -> None:
    lines, _, _ = head([(b"X-Forwarded-For", b"1.1.1.1")], client=None)
    assert b"X-Forwarded-For: 1.1.1.1" in lines
    lines, _, _ = head([], client="::ffff:10.1.2.3")
    assert b"X-Forwarded-For: 10.1.2.3" in lines


def test_absolute_form_through_an_http_proxy_except_for_upgrades() -> None:
    proxied = HeadTemplate(
        host_header=b"api:80", absolute_prefix=b"http://api:80", proxy_line=b"Proxy-Authorization: Basic eA==\r\n"
    )
    lines, _, _ = head([], template=proxied)
    assert lines[:3] == [
        b"GET http://api:80/api/v1/pods?limit=1 HTTP/1.1",
        b"Host: api:80",
        b"Proxy-Authorization: Basic eA==",
    ]
    lines, _, _ = head([(b"Connection", b"Upgrade")], template=proxied, upgrade=True)
    assert lines[0] == b"GET /api/v1/pods?limit=1 HTTP/1.1" and not any(b"Proxy-Authorization" in x for x in lines)


ALICE = b"Impersonate-User: alice\r\nImpersonate-Group: dev\r\n"
PLAIN = HeadTemplate(host_header=b"api:6443", user_agent=b"User-Agent: kproxy/test\r\n")


def test_impersonate_mode_replaces_the_clients_credentials_with_its_identity() -> None:
    # --client-identity impersonate (docs/sharing.md §5): kproxy's credential always, the
    # certificate's identity, and nothing of what the client claimed.
    raw = [
        (b"Host", b"h"),
        (b"Authorization", b"Bearer stolen"),
        (b"impersonate-user", b"root"),
        (b"Impersonate-Group", b"system:masters"),
        (b"Impersonate-Uid", b"0"),
        (b"Impersonate-Extra-Scopes", b"all"),
        (b"Accept", b"application/json"),
    ]
    lines, _, _ = head(raw, template=PLAIN, impersonate=ALICE)
    assert lines == [
        b"GET /api/v1/pods?limit=1 HTTP/1.1",
        b"Host: api:6443",
        b"Accept: application/json",
        b"Authorization: Bearer secret",
        b"Impersonate-User: alice",
        b"Impersonate-Group: dev",
        b"User-Agent: kproxy/test",
        b"X-Forwarded-For: 10.0.0.9",
    ]


def test_impersonate_mode_drops_the_bearer_subprotocol_of_an_upgrade() -> None:
    raw = [
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Protocol", b"base64url.bearer.authorization.k8s.io.c3RvbGVu, v5.channel.k8s.io"),
    ]
    lines, _, _ = head(raw, upgrade=True, template=PLAIN, impersonate=ALICE)
    assert b"Sec-Websocket-Protocol: v5.channel.k8s.io" in lines and b"Impersonate-User: alice" in lines
    lines, _, _ = head(raw[:2] + [(b"Sec-WebSocket-Protocol", b"base64url.bearer.authorization.k8s.io.eA")],
                       upgrade=True, template=PLAIN, impersonate=ALICE)  # fmt: skip
    assert not any(line.lower().startswith(b"sec-websocket-protocol") for line in lines)
    # Without impersonation the subprotocol is the client's business (passthrough, proxy).
    lines, _, _ = head(raw, upgrade=True, template=PLAIN)
    assert any(b"bearer.authorization" in line for line in lines)


def _audited(raw: list[tuple[bytes, bytes]], *, upgrade: bool = False) -> tuple[bytes, bytes, bool]:
    fresh = b"Audit-Id: 11111111-2222-4333-8444-555555555555\r\n\r\n"
    built = request_head(
        T, "GET", b"/api", raw, upgrade=upgrade, auth_line=AUTH, client="10.0.0.9", audit=lambda: fresh
    )
    return built.data, built.audit_id, built.fresh


@pytest.mark.parametrize("upgrade", [False, True])
def test_a_fresh_audit_id_ends_the_head_when_the_client_sent_none(upgrade: bool) -> None:
    data, audit_id, fresh = _audited([(b"Host", b"h"), (b"Accept", b"*/*")], upgrade=upgrade)
    assert data.endswith(b"X-Forwarded-For: 10.0.0.9\r\nAudit-Id: 11111111-2222-4333-8444-555555555555\r\n\r\n")
    assert data.count(b"Audit-Id") == 1
    assert (audit_id, fresh) == (b"11111111-2222-4333-8444-555555555555", True)


@pytest.mark.parametrize(
    ("raw", "sent", "audit_id"),
    [
        # The client's own id passes on, and is the request's id; none is added.
        ([(b"audit-id", b"mine-1")], [b"Audit-Id: mine-1"], b"mine-1"),
        # Several: all pass on, the first is the one the API server takes (Go's Header.Get).
        ([(b"Audit-ID", b"a"), (b"Audit-Id", b"b")], [b"Audit-Id: a", b"Audit-Id: b"], b"a"),
    ],
)
def test_the_clients_audit_id_is_kept(raw: list[tuple[bytes, bytes]], sent: list[bytes], audit_id: bytes) -> None:
    data, got, fresh = _audited([(b"Host", b"h"), *raw])
    assert [line for line in data.split(b"\r\n") if line.startswith(b"Audit-Id")] == sent
    assert data.endswith(b"\r\n\r\n") and not data.endswith(b"555555555555\r\n\r\n")
    assert (got, fresh) == (audit_id, False)


@pytest.mark.parametrize(
    "raw",
    [
        [(b"Audit-Id", b"")],  # empty: the API server would make up its own
        [(b"Audit-Id", b"  ")],
        [(b"Connection", b"audit-id"), (b"Audit-Id", b"x")],  # listed in Connection: dropped
    ],
)
def test_an_audit_id_the_api_server_would_not_take_is_replaced(raw: list[tuple[bytes, bytes]]) -> None:
    data, audit_id, fresh = _audited([(b"Host", b"h"), *raw])
    assert data.count(b"Audit-Id") == 1 and fresh
    assert audit_id == b"11111111-2222-4333-8444-555555555555"


def test_no_audit_id_without_a_source_of_them() -> None:
    built = request_head(T, "GET", b"/api", [(b"Host", b"h")], upgrade=False, auth_line=AUTH, client=None)
    assert b"Audit-Id" not in built.data and (built.audit_id, built.fresh) == (b"", False)
