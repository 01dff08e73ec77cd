"""Certificates the TLS listener's tests need beyond ``kproxy.testing.TestPKI``'s: any subject
(no Common Name, several Organizations), expired ones, encrypted keys, another CA, and
kproxy's serving pair written where a test can swap it (atomic rename, in-place write);
and the subjects of the CA certificates a TLS context trusts, read back.

Everything is made in the test with ``cryptography``; ECDSA P-256 like ``TestPKI``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kproxy.testing import CertPair, TestPKI

DAY = datetime.timedelta(days=1)

# A certificate's subject as ``ssl`` gives it: relative distinguished names, each a tuple
# of (attribute, value) pairs.
Subject = tuple[tuple[tuple[str, str], ...], ...]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def name(cn: str | None = None, orgs: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def issue(
    pki: TestPKI,
    subject: x509.Name,
    *,
    server: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> CertPair:
    """A leaf signed by ``pki``'s CA: a client certificate, or a server one for 127.0.0.1."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca_pem)
    ca_key = serialization.load_pem_private_key(pki.ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now() - DAY)
        .not_valid_after(not_after or now() + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def encrypted(key_pem: bytes, password: bytes = b"secret") -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password)
    )


def serial(cert_pem_or_der: bytes) -> int:
    if cert_pem_or_der.startswith(b"-----"):
        return x509.load_pem_x509_certificate(cert_pem_or_der).serial_number
    return x509.load_der_x509_certificate(cert_pem_or_der).serial_number


@dataclass
class ClientFiles:
    cert: Path
    key: Path

    def curl(self) -> list[str]:
        return ["--cert", str(self.cert), "--key", str(self.key)]


def write_client(directory: Path, label: str, pair: CertPair) -> ClientFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{label}.crt", directory / f"{label}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
    return ClientFiles(cert, key)


class SecretVolume:
    """kproxy's serving pair as Kubernetes mounts a secret: ``tls.crt`` and ``tls.key`` are
    symlinks into ``..data``, itself a symlink to a timestamped directory; an update writes
    a new directory and swaps ``..data`` with one atomic rename."""

    def __init__(self, root: Path, pair: CertPair) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._publish(pair)
        (root / "tls.crt").symlink_to("..data/tls.crt")
        (root / "tls.key").symlink_to("..data/tls.key")

    @property
    def cert(self) -> Path:
        return self.root / "tls.crt"

    @property
    def key(self) -> Path:
        return self.root / "tls.key"

    def update(self, pair: CertPair) -> None:
        self._publish(pair)

    def _publish(self, pair: CertPair) -> None:
        self._n += 1
        version = self.root / f"..2026_{self._n:04d}"
        version.mkdir()
        (version / "tls.crt").write_bytes(pair.cert_pem)
        (version / "tls.key").write_bytes(pair.key_pem)
        link = self.root / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, self.root / "..data")


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A TLS handshake in memory, no socket: (server side, client side) once both are done.
    Raises the first side's ``ssl.SSLError`` if it fails."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = {"s": False, "c": False}
    for _ in range(20):
        for side, obj in (("c", c), ("s", s)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return s, c
    raise AssertionError("the handshake did not finish")


def ca_subjects(context: ssl.SSLContext) -> list[Subject]:
    """The subject of each CA certificate ``context`` trusts, in its order."""
    # typeshed gives every value of ssl's certificate dict one union (str or tuples of
    # either depth); "subject" is always the RDN tuples (Python's ssl docs, getpeercert).
    return [cast(Subject, certificate["subject"]) for certificate in context.get_ca_certs()]
