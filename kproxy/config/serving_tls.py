"""The TLS listener's settings and its ``SSLContext``: ``--tls-cert-file`` and friends.

In: :class:`~kproxy.config.flags.Flags` (``--tls-cert-file``, ``--tls-private-key-file``,
``--tls-min-version``, ``--tls-cipher-suites``, ``--client-ca-file``, and ``--unix-socket``,
which TLS does not combine with) and the working directory. Out: :class:`ServingTLS` — the
files (absolute), the version and suites in OpenSSL's terms, and the first server context —
or ``None`` without ``--tls-cert-file``; :meth:`ServingTLS.load` builds a fresh context from
the files as they are now (start-up, and every reload).

Errors are one :class:`~kproxy.errors.ConfigError` line naming the flag and the file
(missing, unreadable, not PEM, an encrypted or mismatched key, a CA file without
certificates, an unknown version or suite); never a byte of the file. Go's names are
mapped by :mod:`kproxy.policy.tls_names`; client certificates are requested by
:mod:`kproxy.config.client_verification`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kproxy.config.files import read_file, resolve
from kproxy.config.flags import Flags
from kproxy.credentials.sources import pem_file
from kproxy.errors import ConfigError

if TYPE_CHECKING:
    from kproxy.policy.tls_names import TLSVersionName

__all__ = ["Loaded", "ServingTLS", "serving_tls"]

_VERSIONS = {(1, 2): ssl.TLSVersion.TLSv1_2, (1, 3): ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class Loaded:
    """A server context built from the files, and what to say about them."""

    context: ssl.SSLContext
    deferred: bool  # a bad client certificate gets the 401 (True) or a TLS alert
    warnings: tuple[str, ...] = ()
    fingerprint: bytes = b""  # of the files' bytes: a reload that finds them unchanged changes nothing


@dataclass(frozen=True)
class ServingTLS:
    """HTTPS on kproxy's own port."""

    cert_file: str  # absolute
    key_file: str
    client_ca_file: str  # absolute, "" without client certificates
    version: TLSVersionName
    ciphers: tuple[str, ...]  # OpenSSL's names for TLS 1.2; (): OpenSSL's (Python's) secure default list
    first: Loaded = field(repr=False, compare=False)  # built at start-up

    @property
    def files(self) -> tuple[str, ...]:
        """The files a reload re-reads."""
        return (self.cert_file, self.key_file, *((self.client_ca_file,) if self.client_ca_file else ()))

    def load(self) -> Loaded:
        """A context from the files as they are now. Raises ConfigError naming flag and file."""
        return _load(self.cert_file, self.key_file, self.client_ca_file, self.version, self.ciphers)

    def describe(self) -> str:
        """The start-up notice."""
        text = (
            f"serving HTTPS with --tls-cert-file {self.cert_file} (TLS {'1.3' if self.version.tls13_only else '1.2+'})"
        )
        if self.client_ca_file:
            text += f"; client certificates required, from --client-ca-file {self.client_ca_file}"
            if not self.first.deferred:
                text += " (a bad one ends the TLS handshake: this Python cannot defer verification)"
        return text


def serving_tls(flags: Flags, base: str, warnings: list[str]) -> ServingTLS | None:
    """The TLS listener the flags ask for, its files read and checked; None for plain HTTP.
    What deserves a warning (an expired certificate, suites without effect) goes to ``warnings``."""
    if not flags.tls_cert_file and not flags.tls_private_key_file:
        for name, given in (
            ("--client-ca-file", bool(flags.client_ca_file)),
            ("--tls-min-version", flags.tls_min_version != Flags.tls_min_version),
            ("--tls-cipher-suites", bool(flags.tls_cipher_suites)),
        ):
            if given:
                raise ConfigError(
                    f"{name} applies to kproxy's TLS listener: give --tls-cert-file and --tls-private-key-file too"
                )
        return None
    if not flags.tls_cert_file or not flags.tls_private_key_file:
        missing = "--tls-private-key-file" if flags.tls_cert_file else "--tls-cert-file"
        raise ConfigError(f"{missing} is missing: --tls-cert-file and --tls-private-key-file go together")
    if flags.unix_socket:
        raise ConfigError(
            "--tls-cert-file cannot be used with --unix-socket: the socket file's mode decides who connects; "
            "serve TLS on --port"
        )
    # Only a TLS listener needs Go's names and the rest (docs/startup.md §6).
    from kproxy.policy.tls_names import cipher_suites, min_version

    try:
        version = min_version(flags.tls_min_version)
        ciphers = cipher_suites(flags.tls_cipher_suites)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name in ciphers:
        if not _available(name):
            raise ConfigError(
                f"--tls-cipher-suites: {name} (OpenSSL's name) is not available in {ssl.OPENSSL_VERSION}; "
                "choose another suite"
            )
    if flags.tls_cipher_suites and not ciphers and not version.tls13_only:
        raise ConfigError(
            "--tls-cipher-suites names only TLS 1.3 suites, which are always on and not configurable: name TLS 1.2 "
            "suites too, or use --tls-min-version VersionTLS13"
        )
    if flags.tls_cipher_suites and version.tls13_only:
        # Go ignores them too.
        warnings.append("--tls-cipher-suites has no effect with --tls-min-version VersionTLS13: TLS 1.3's are fixed")
    cert = resolve(base, flags.tls_cert_file)
    key = resolve(base, flags.tls_private_key_file)
    ca = resolve(base, flags.client_ca_file) if flags.client_ca_file else ""
    first = _load(cert, key, ca, version, ciphers)
    warnings.extend(first.warnings)
    return ServingTLS(cert, key, ca, version, ciphers, first)


def _load(cert_file: str, key_file: str, ca_file: str, version: TLSVersionName, ciphers: tuple[str, ...]) -> Loaded:
    cert_pem = read_file(cert_file, "--tls-cert-file")
    key_pem = read_file(key_file, "--tls-private-key-file")
    warnings = _check_certificate(cert_pem, cert_file)
    _check_key(key_pem, key_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[version.version]
    context.options |= ssl.OP_NO_RENEGOTIATION  # Go's server never renegotiates
    # Python 3.13 verifies X.509 strictly by default; kube-apiserver (Go) does not.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    if ciphers:
        context.set_ciphers(":".join(ciphers))
    # kproxy speaks HTTP/1.1 to clients: say so, so that kubectl does not try h2.
    context.set_alpn_protocols(["http/1.1"])
    with pem_file(cert_pem) as cert_path, pem_file(key_pem) as key_path:
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                raise ConfigError(
                    f"--tls-private-key-file {key_file} does not match the certificate in --tls-cert-file {cert_file}"
                ) from None
            reason = getattr(exc, "reason", None) or "cannot be loaded"
            raise ConfigError(
                f"--tls-cert-file {cert_file} / --tls-private-key-file {key_file}: cannot be used together ({reason})"
            ) from None
    import hashlib  # with a TLS listener only

    deferred = False
    fingerprint = hashlib.sha256(cert_pem + b"\0" + key_pem)
    if ca_file:
        ca_pem = read_file(ca_file, "--client-ca-file")
        fingerprint.update(b"\0" + ca_pem)
        from kproxy.config.client_verification import request_client_certificates

        deferred = request_client_certificates(context, _ca_bundle(ca_pem, ca_file))
    return Loaded(context, deferred, tuple(warnings), fingerprint.digest())


def _check_certificate(pem: bytes, path: str) -> list[str]:
    from datetime import UTC, datetime

    from cryptography import x509  # only with a TLS listener: start-up stays lean without

    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(
            f"--tls-cert-file {path}: no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)"
        ) from None
    leaf = chain[0]
    now = datetime.now(UTC)
    # Warnings only: a client refuses an expired certificate, and a fix may be on its way.
    if leaf.not_valid_after_utc < now:
        return [f"--tls-cert-file {path}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if leaf.not_valid_before_utc > now:
        return [
            f"--tls-cert-file {path}: the certificate is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        ]
    return []


def _check_key(pem: bytes, path: str) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(
            f"--tls-private-key-file {path}: the key is encrypted; kproxy needs it unencrypted "
            "(openssl pkey -in KEY -out PLAIN.key)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"--tls-private-key-file {path}: no PEM private key in the file (expected -----BEGIN PRIVATE KEY-----)"
        ) from None


def _ca_bundle(pem: bytes, path: str) -> bytes:
    """The CA certificates, re-encoded: only what parsed goes to OpenSSL."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(
            f"--client-ca-file {path}: no PEM certificates in the file (expected -----BEGIN CERTIFICATE----- blocks)"
        ) from None
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def _available(openssl_name: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(openssl_name)
    except ssl.SSLError:
        return False
    return True
