"""Throw-away certificates for tests and the demo cluster, made with ``cryptography``.

``TestPKI.create()`` makes one CA and two leaves it signed:

* a server certificate for the fake API server, with a subject alternative name per
  entry of ``server_names`` (IP SANs for addresses, DNS SANs for names);
* a client certificate ``CN=kproxy-test-user, O=system:masters``: the API server's
  x509 authenticator takes the CN as the user name and the O values as groups.

Keys are ECDSA P-256 (fast to make; Go, OpenSSL and kubectl accept them) in PKCS#8 PEM,
or RSA 2048 with ``key_type="rsa"`` (what kubeadm issues: the benchmarks use it, since
the handshake's cost is part of what a proxy pays).
The CA and leaves carry the extensions Python 3.13's ``VERIFY_X509_STRICT`` insists on
(key usage, basic constraints, subject and authority key identifiers), so they verify
under strict and lenient settings alike. Nothing here is ever written to disk unless the
caller asks with ``write()``.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CLIENT_CN", "CLIENT_GROUP", "CertPair", "TestPKI"]

CLIENT_CN = "kproxy-test-user"
CLIENT_GROUP = "system:masters"

_VALIDITY = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(hours=1)  # tolerate small clock differences

KeyType = Literal["ec", "rsa"]
_Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _new_key(key_type: KeyType) -> _Key:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class TestPKI:
    """A CA with one server and one client certificate signed by it."""

    __test__ = False  # not a pytest test class, despite the name

    ca_pem: bytes
    server: CertPair
    client: CertPair
    ca_key_pem: bytes = field(repr=False, default=b"")

    @classmethod
    def create(
        cls, *, server_names: Sequence[str] = ("localhost", "127.0.0.1", "::1"), key_type: KeyType = "ec"
    ) -> TestPKI:
        if not server_names:
            raise ValueError("server_names must name at least one host or address")
        ca_key = _new_key(key_type)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kproxy-test-ca")])
        now = _now()
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        server = _issue(
            ca_cert,
            ca_key,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            ExtendedKeyUsageOID.SERVER_AUTH,
            sans,
        )
        client = _issue(ca_cert, ca_key, _client_name(CLIENT_CN, (CLIENT_GROUP,)), ExtendedKeyUsageOID.CLIENT_AUTH, [])
        return cls(ca_pem=ca_pem, server=server, client=client, ca_key_pem=_key_pem(ca_key))

    def issue_client(self, common_name: str, organizations: Sequence[str] = ()) -> CertPair:
        """Another client certificate from the same CA (user ``common_name``, groups ``organizations``)."""
        if not self.ca_key_pem:
            raise ValueError("this TestPKI has no CA key; make it with TestPKI.create()")
        ca_cert = x509.load_pem_x509_certificate(self.ca_pem)
        ca_key = serialization.load_pem_private_key(self.ca_key_pem, password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TypeError("the CA key is neither an EC nor an RSA key")
        name = _client_name(common_name, organizations)
        return _issue(ca_cert, ca_key, name, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``ca.crt``, ``server.crt``, ``server.key``, ``client.crt``, ``client.key`` (keys mode 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "ca.crt": self.ca_pem,
            "server.crt": self.server.cert_pem,
            "server.key": self.server.key_pem,
            "client.crt": self.client.cert_pem,
            "client.key": self.client.key_pem,
        }
        paths: dict[str, Path] = {}
        for name, data in files.items():
            path = directory / name
            path.write_bytes(data)
            if name.endswith(".key"):
                path.chmod(0o600)
            paths[name] = path
        return paths

    def server_ssl_context(self, *, client_certs: bool = True) -> ssl.SSLContext:
        """A server context with the server certificate; client certificates verified if given."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        _load_chain(ctx, self.server)
        # kube-apiserver speaks h2 too, but the fake is HTTP/1.1 only: offer just that.
        ctx.set_alpn_protocols(["http/1.1"])
        if client_certs:
            # Go's VerifyClientCertIfGiven, as kube-apiserver configures it.
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cadata=self.ca_pem.decode())
        return ctx

    def client_ssl_context(self, client: CertPair | None = None) -> ssl.SSLContext:
        """A client context trusting the CA, presenting ``client`` if given."""
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        if client is not None:
            _load_chain(ctx, client)
        return ctx


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _client_name(common_name: str, organizations: Sequence[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_pem(key: _Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    ca_cert: x509.Certificate,
    ca_key: _Key,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> CertPair:
    # Leaves are of the CA's kind; an RSA key also enciphers (RSA key exchange, RFC 5280 §4.2.1.3).
    rsa_key = isinstance(ca_key, rsa.RSAPrivateKey)
    key = _new_key("rsa" if rsa_key else "ec")
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=rsa_key,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _load_chain(ctx: ssl.SSLContext, pair: CertPair) -> None:
    # ssl can only load certificate chains from files: stage them in a private temporary
    # directory that is removed as soon as they are read.
    with tempfile.TemporaryDirectory(prefix="kproxy-pki-") as tmp:
        cert = Path(tmp) / "cert.pem"
        key = Path(tmp) / "key.pem"
        cert.write_bytes(pair.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(pair.key_pem)
        ctx.load_cert_chain(cert, key)
