"""Who is on the other end of a TLS connection, by its client certificate: decided once per connection.

In: a request's connection (its TLS transport's ``ssl_object``: the peer certificate and
the verification verdict of :mod:`kproxy.config.client_verification`) and the
``--client-identity`` mode. Out: a :class:`Peer` — the client's
:class:`~kproxy.policy.client_identity.ClientIdentity`, the impersonation lines the
upstream head carries in ``impersonate`` mode, or why the client is refused (the
message of its ``401``: ``client certificate required``, the verification failure, a
certificate without a Common Name).

The :class:`Peer` is made on a connection's first request and kept on the connection's
:class:`~kproxy.proxy.fast.ClientState` (``request.protocol.attachment``), so the
certificate is read once per connection, not per request; :func:`identity_of` gives it
to whoever needs it per request (an access log's ``user``).
"""

from __future__ import annotations

from dataclasses import dataclass

from kproxy.config.client_verification import verification_problem
from kproxy.errors import Unauthorized
from kproxy.http import Request
from kproxy.policy.client_identity import ClientIdentity, IdentityMode, identity_from_subject

__all__ = ["NO_CERTIFICATE", "Identify", "Peer", "identity_of"]

NO_CERTIFICATE = "client certificate required"


@dataclass(frozen=True, slots=True)
class Peer:
    """What a connection's client certificate says."""

    identity: ClientIdentity | None
    refusal: str = ""  # "" when the client is admitted; else the 401's message
    impersonation: bytes | None = None  # the upstream's Impersonate-* lines in impersonate mode

    def check(self) -> None:
        """Raise the 401 for a refused client."""
        if self.refusal:
            raise Unauthorized(self.refusal)


class Identify:
    """``identify(request)`` → the :class:`Peer` of the request's connection."""

    def __init__(self, mode: IdentityMode) -> None:
        self.mode = mode

    def __call__(self, request: Request) -> Peer:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        if not certificate:
            return Peer(None, NO_CERTIFICATE)
        problem = verification_problem(ssl_object)
        if problem is not None:
            return Peer(None, f"client certificate verification failed: {problem}")
        try:
            identity = identity_from_subject(certificate.get("subject", ()))
        except ValueError as exc:
            return Peer(None, str(exc))
        return Peer(identity, "", identity.impersonation() if self.mode == "impersonate" else None)


def identity_of(request: Request) -> ClientIdentity | None:
    """The identity of ``request``'s client, once its connection has been judged; None
    without ``--client-ca-file`` (or for a refused client)."""
    peer = getattr(request.protocol.attachment, "peer", None)
    return peer.identity if isinstance(peer, Peer) else None
