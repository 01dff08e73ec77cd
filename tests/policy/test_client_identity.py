"""kproxy.policy.client_identity: a certificate's subject as Kubernetes' x509 authenticator
reads it (CN → user, each O → a group; docs/sharing.md §4), and the impersonation headers
client-go would send for it (§5)."""

from __future__ import annotations

import pytest

from kproxy.policy.client_identity import ClientIdentity, identity_from_subject, without_bearer_protocols

CN = "commonName"
O = "organizationName"  # noqa: E741


@pytest.mark.parametrize(
    ("subject", "identity"),
    [
        (((("commonName", "alice"),),), ClientIdentity("alice")),
        ((((O, "dev"),), ((O, "ops"),), ((CN, "alice"),)), ClientIdentity("alice", ("dev", "ops"))),
        # Go's pkix.Name: the last CN wins; every O counts, in order; other attributes are ignored.
        (
            (((CN, "first"),), ((CN, "alice"),), (("countryName", "DE"),), ((O, "b"),), ((O, "a"),)),
            ClientIdentity("alice", ("b", "a")),
        ),
        # A multi-valued RDN.
        ((((CN, "alice"), (O, "dev")),), ClientIdentity("alice", ("dev",))),
        # Names are sent as they are: colons, spaces inside, non-ASCII.
        (
            (((CN, "system:serviceaccount:ns:sa"),), ((O, "system:masters"),)),
            ClientIdentity("system:serviceaccount:ns:sa", ("system:masters",)),
        ),
        ((((CN, "Jürgen Müller"),),), ClientIdentity("Jürgen Müller")),
    ],
)
def test_identity_from_subject(subject: tuple, identity: ClientIdentity) -> None:  # type: ignore[type-arg]
    assert identity_from_subject(subject) == identity


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ((), "client certificate has no common name (CN): kproxy takes the user name from it"),
        ((((O, "dev"),),), "client certificate has no common name (CN): kproxy takes the user name from it"),
        ((((CN, ""),),), "client certificate has no common name (CN)"),
        (
            (((CN, "alice\r\nImpersonate-User: root"),),),
            "client certificate's common name (CN) cannot be sent in a header",
        ),
        ((((CN, " alice"),),), "client certificate's common name (CN) cannot be sent in a header"),
        ((((CN, "alice"),), ((O, "dev\x00"),)), "client certificate's organization (O) cannot be sent in a header"),
        ((((CN, "alice"),), ((O, "dev "),)), "client certificate's organization (O) cannot be sent in a header"),
    ],
)
def test_subjects_that_name_nobody_are_refused_with_the_reason(subject: tuple, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError) as caught:
        identity_from_subject(subject)
    assert str(caught.value).startswith(reason)


def test_impersonation_headers_as_client_go_sends_them() -> None:
    assert ClientIdentity("alice").impersonation() == b"Impersonate-User: alice\r\n"
    assert ClientIdentity("Jürgen", ("dev", "system:masters")).impersonation() == (
        "Impersonate-User: Jürgen\r\nImpersonate-Group: dev\r\nImpersonate-Group: system:masters\r\n".encode()
    )


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (b"v5.channel.k8s.io, v4.channel.k8s.io", b"v5.channel.k8s.io, v4.channel.k8s.io"),
        (b"base64url.bearer.authorization.k8s.io.dG9rZW4, v4.channel.k8s.io", b"v4.channel.k8s.io"),
        (b"v4.channel.k8s.io,Base64url.Bearer.Authorization.K8s.Io.dG9rZW4", b"v4.channel.k8s.io"),
        (b"base64url.bearer.authorization.k8s.io.dG9rZW4", b""),
    ],
)
def test_bearer_token_subprotocols_are_removed(value: bytes, kept: bytes) -> None:
    assert without_bearer_protocols(value) == kept
