"""Who a client is, by its certificate, and what the API server is told about it.

In: a verified client certificate's subject as Python's ``ssl`` gives it
(``getpeercert()["subject"]``: relative distinguished names, each a tuple of
``(attribute, value)`` pairs). Out: a :class:`ClientIdentity` — the user (the Common Name)
and groups (each Organization, in order) exactly as Kubernetes' x509 authenticator reads a
certificate (``docs/sharing.md`` §4) — and, for ``--client-identity impersonate``, the
``Impersonate-User`` / ``Impersonate-Group`` header lines client-go would send for it
(``docs/sharing.md`` §5). A subject that names no user, or a value that cannot travel in
a header, is refused with a ``ValueError`` whose message is the reason the client is told
(never the certificate itself).

The three ``--client-identity`` modes (:data:`IdentityMode`):

* ``proxy`` — kubectl's behaviour: kproxy's credential on requests that carry none;
* ``impersonate`` — kproxy's credential on every request, plus the client's identity as
  impersonation headers; the client's own ``Authorization`` and ``Impersonate-*`` dropped;
* ``passthrough`` — no credential of kproxy's at all: the client's own, or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["IDENTITY_MODES", "ClientIdentity", "IdentityMode", "identity_from_subject", "without_bearer_protocols"]

IdentityMode = Literal["proxy", "impersonate", "passthrough"]
IDENTITY_MODES: tuple[IdentityMode, ...] = ("proxy", "impersonate", "passthrough")

Subject = Sequence[Sequence[tuple[str, str]]]

# kube-apiserver's WebSocket authenticator takes a bearer token from this subprotocol
# (browsers cannot set Authorization on a WebSocket): a credential like Authorization.
_BEARER_PROTOCOL = b"base64url.bearer.authorization.k8s.io."
_UNSENDABLE = "cannot be sent in a header (control characters, or spaces at either end)"


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client as its certificate names it: the user (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()

    def impersonation(self) -> bytes:
        """client-go's impersonation headers for this identity (CRLF-ended lines)."""
        lines = [b"Impersonate-User: " + self.user.encode() + b"\r\n"]
        lines += [b"Impersonate-Group: " + group.encode() + b"\r\n" for group in self.groups]
        return b"".join(lines)


def identity_from_subject(subject: Subject) -> ClientIdentity:
    """The identity a certificate's subject names. Raises ValueError with the reason to give.

    Go's ``pkix.Name``: the last Common Name wins; every Organization is kept, in order.
    """
    user = ""
    groups: list[str] = []
    for rdn in subject:
        for attribute, value in rdn:
            if attribute == "commonName":
                user = value
            elif attribute == "organizationName":
                groups.append(value)
    if not user:
        raise ValueError("client certificate has no common name (CN): kproxy takes the user name from it")
    if not _sendable(user):
        raise ValueError(f"client certificate's common name (CN) {_UNSENDABLE}")
    if not all(_sendable(group) for group in groups):
        raise ValueError(f"client certificate's organization (O) {_UNSENDABLE}")
    return ClientIdentity(user, tuple(groups))


def without_bearer_protocols(value: bytes) -> bytes:
    """A ``Sec-WebSocket-Protocol`` value without the bearer-token subprotocols (which
    authenticate like ``Authorization``); ``b""`` when nothing else is left."""
    if _BEARER_PROTOCOL not in value.lower():
        return value
    kept = [item.strip() for item in value.split(b",") if not item.strip().lower().startswith(_BEARER_PROTOCOL)]
    return b", ".join(item for item in kept if item)


def _sendable(value: str) -> bool:
    # Go's httpguts.ValidHeaderFieldValue: no control characters but tab. A leading or
    # trailing space would be trimmed by the server's parser: refused too, as it would
    # name another user.
    return value == value.strip() and not any((c < " " and c != "\t") or c == "\x7f" for c in value)
