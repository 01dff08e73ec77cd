"""The request head kproxy sends to the API server, built from the client's.

In: the client's method, raw header lines and peer address, the upstream target (path
and query, the client's encoding kept), the credential line to add, and what every
request carries (:class:`HeadTemplate`, fixed at start-up). Out: the head as bytes, and
whether a body follows and whether it is chunked.

The rules are ``httputil.ReverseProxy``'s as kubectl uses it (``docs/kubectl-proxy.md``
§6.2, §8): ``Host`` becomes the API server's; hop-by-hop headers (and those the client's
``Connection`` lists) are dropped, except on upgrades, where the client's
``Connection``/``Upgrade``/``Sec-WebSocket-*`` must reach the server; the credential is
added only when the client sent no ``Authorization`` (client-go: a user who set
credentials keeps them); kubeconfig impersonation only when the client sent no
``Impersonate-User``; ``X-Forwarded-For`` gets the client's address appended; framing
(``Content-Length`` or chunked) is re-added for ordinary requests. Unlike kubectl,
nothing about encodings is added. ``Expect`` is answered by kproxy itself.

With ``--client-identity impersonate`` (``impersonate``: the client's
``Impersonate-User``/``Impersonate-Group`` lines, from its certificate) the client's own
credentials go: ``Authorization``, every ``Impersonate-*`` header and, on upgrades, the
bearer-token WebSocket subprotocol; kproxy's credential and the client's identity are
added instead (``docs/sharing.md`` §5).

kproxy's own addition: an ``Audit-Id`` (:mod:`kproxy.policy.audit_id`) when the client
sent none (or an empty one, which the API server would replace with its own), as the
last header line, so that a head built once can be sent again with a fresh id spliced
in (the fast path's way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kproxy.policy.audit_id import AUDIT_HEADER, id_of
from kproxy.policy.client_identity import without_bearer_protocols
from kproxy.policy.gonet import unmap_ipv4
from kproxy.policy.headers import HOP_BY_HOP, UPGRADE_DROP, canonical_name, connection_tokens

__all__ = ["HeadTemplate", "RequestHead", "request_head"]


@dataclass(frozen=True)
class HeadTemplate:
    """What every request to the API server carries, decided at start-up."""

    host_header: bytes  # host[:port] as written in the kubeconfig
    impersonation: bytes = b""  # Impersonate-* lines from the kubeconfig (CRLF-ended)
    user_agent: bytes = b""  # a User-Agent line, for clients that sent none
    # An http:// API server behind an HTTP proxy: requests in absolute form with the
    # proxy's credentials (Go's transport); upgrades are tunnelled and keep the origin form.
    absolute_prefix: bytes = b""  # b"http://host:port", or b"" for origin form
    proxy_line: bytes = field(default=b"", repr=False)  # Proxy-Authorization line, or b""

    @property
    def host_line(self) -> bytes:
        return b"Host: " + self.host_header + b"\r\n"


@dataclass(frozen=True, slots=True)
class RequestHead:
    data: bytes
    has_body: bool
    chunked: bool
    # The Audit-Id the API server gets: the client's, or the fresh one that ends ``data``
    # (``fresh``); b"" when there is none (no ``audit`` given).
    audit_id: bytes = b""
    fresh: bool = False


def request_head(
    template: HeadTemplate,
    method: str,
    target: bytes,
    raw_headers: Sequence[tuple[bytes, bytes]],
    *,
    upgrade: bool,
    auth_line: bytes,
    client: str | None,
    impersonate: bytes | None = None,
    audit: Callable[[], bytes] | None = None,
) -> RequestHead:
    """The upstream head. ``auth_line``: added when the client sent no Authorization;
    ``client``: the peer's address (None for a unix-socket client); ``impersonate``: the
    client's identity as impersonation lines, replacing whatever credentials it sent;
    ``audit``: makes the line ending the head with a fresh Audit-Id (``AuditIds.line``),
    used when the client sent none.

    Long because one pass over the client's header lines decides every rule: split up,
    it would walk them several times for every request not served from the fast path's
    memo."""
    hop = UPGRADE_DROP if upgrade else HOP_BY_HOP
    listed = connection_tokens(raw_headers) if not upgrade else frozenset()
    absolute = bool(template.absolute_prefix) and not upgrade
    parts = [method.encode(), b" ", template.absolute_prefix + target if absolute else target, b" HTTP/1.1\r\n"]
    parts.append(template.host_line)
    if absolute:
        parts.append(template.proxy_line)
    has_auth = has_impersonation = has_agent = False
    content_length: bytes | None = None
    chunked = te_trailers = False
    forwarded_for: list[bytes] = []
    client_audit = b""
    for name, value in raw_headers:
        lname = name.lower()
        if lname == b"host":
            continue
        if impersonate is not None:
            if lname == b"authorization" or lname.startswith(b"impersonate-"):
                continue  # the client's credentials never reach the API server
            if lname == b"sec-websocket-protocol":
                value = without_bearer_protocols(value)
                if not value:
                    continue
        if lname == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lname == b"te":
            te_trailers = te_trailers or b"trailers" in value.lower()
        elif lname == b"content-length":
            content_length = value
            if not upgrade:
                continue
        elif lname == b"x-forwarded-for":
            forwarded_for.append(value)
            continue
        elif lname == b"authorization":
            has_auth = True
        elif lname == b"impersonate-user":
            has_impersonation = True
        elif lname == b"user-agent":
            has_agent = True
        elif lname == b"expect":
            continue  # answered locally (RFC 9110 §10.1.1)
        elif lname == AUDIT_HEADER:
            if not value.strip() or lname in listed:
                continue  # the API server would make up its own (or never see it): ours replaces it
            client_audit = client_audit or value  # the first one counts (Go's Header.Get)
        if lname in hop or lname in listed:
            continue
        parts += (canonical_name(name), b": ", value, b"\r\n")
    if te_trailers and not upgrade:
        parts.append(b"Te: trailers\r\n")
    if not has_auth:
        parts.append(auth_line)
    if impersonate is not None:
        parts.append(impersonate)
    elif not has_impersonation:
        parts.append(template.impersonation)  # client-go skips its own when any is set
    if not has_agent:
        parts.append(template.user_agent)
    if client is not None:
        address = unmap_ipv4(client).encode()
        prior = b", ".join(forwarded_for)
        parts += (b"X-Forwarded-For: ", prior + b", " + address if prior else address, b"\r\n")
    elif forwarded_for:  # a unix socket client: pass the chain on unchanged
        parts += (b"X-Forwarded-For: ", b", ".join(forwarded_for), b"\r\n")
    has_body = chunked or (content_length is not None and content_length.strip() != b"0")
    # Framing: re-added for ordinary requests (Transfer-Encoding is hop-by-hop); an
    # upgrade request already carried the client's own headers through.
    if not upgrade:
        if chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif content_length is not None:
            parts += (b"Content-Length: ", content_length, b"\r\n")
    if client_audit or audit is None:
        parts.append(b"\r\n")
        return RequestHead(b"".join(parts), has_body, chunked, client_audit)
    line = audit()
    parts.append(line)  # last, with the head's final CRLF: see the module docstring
    return RequestHead(b"".join(parts), has_body, chunked, id_of(line), True)
