"""Certificates for the upstream: a CA, a server certificate for 127.0.0.1, a client
certificate the proxies present (nginx requires one, as kube-apiserver does for
client-certificate users). Made fresh for every run by kproxy's own
:class:`~kproxy.testing.TestPKI`; never checked in.

RSA 2048 as kubeadm issues them: the handshake cost is part of what a proxy pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kproxy.testing.certs import TestPKI

__all__ = ["Pki", "make_pki"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    made = TestPKI.create(server_names=("127.0.0.1", "localhost"), key_type="rsa")
    # CN and O are what kube-apiserver takes as user name and group.
    client = made.issue_client("bench-user", ("system:masters",))
    pki = Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )
    for path, data in (
        (pki.ca, made.ca_pem),
        (pki.server_cert, made.server.cert_pem),
        (pki.client_cert, client.cert_pem),
        (pki.server_key, made.server.key_pem),
        (pki.client_key, client.key_pem),
    ):
        path.write_bytes(data)
        if path.name.endswith("-key.pem"):
            path.chmod(0o600)
    return pki
