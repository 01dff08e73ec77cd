"""Custom CA trust: the AKS ``--custom-ca-trust-certificates`` file and ``trustedCa``.

In: the text of a CA file in the AKS format (PEM ``CERTIFICATE`` blocks separated by blank
lines; AKS takes up to 10), or the base64 ``trustedCa`` of an AKS ``httpProxyConfig``; a
source name for messages (the file path); and the current time, passed in so that this
module stays pure.
Out: a :class:`TrustBundle` — the certificates as one PEM ``bytes`` (for
``ssl.SSLContext.load_verify_locations(cadata=...)``), the parsed certificates, the warnings,
and :meth:`TrustBundle.describe` lines for ``--explain-egress``.

::

    -----BEGIN CERTIFICATE-----        block 1
    MIIB...
    -----END CERTIFICATE-----
                                       blank lines separate blocks (any number, or none)
    -----BEGIN CERTIFICATE-----        block 2
    ...

Errors (:class:`~kproxy.errors.ConfigError`, naming the source, the 1-based block number
and its first line): text that is not PEM, a PEM block that is not a ``CERTIFICATE`` (a key,
a CSR, OpenSSL's ``TRUSTED CERTIFICATE``), a block without its END line, a certificate that
``cryptography`` cannot parse, no certificate at all, ``trustedCa`` that is not base64.
Warnings (strings naming the subject): more than 10 certificates in a file (AKS refuses
such a file; kproxy uses them all), a certificate expired or not yet valid, a certificate
that is not a CA (``basicConstraints`` missing or ``CA:FALSE``), a duplicate.

No I/O; ``cryptography`` parses the certificates (imported on first use).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kproxy.errors import ConfigError

if TYPE_CHECKING:
    # Imported where certificates are parsed: only a custom CA file pays for it at start-up.
    from cryptography import x509

__all__ = [
    "AKS_MAX_CERTIFICATES",
    "TrustBundle",
    "merge",
    "parse_ca_file",
    "parse_pem",
    "parse_trusted_ca",
]

AKS_MAX_CERTIFICATES = 10  # "a text file containing up to 10 blank line separated certificates"

_BEGIN = re.compile(r"-----BEGIN (.+)-----")


@dataclass(frozen=True, slots=True)
class TrustBundle:
    """Validated CA certificates. ``origins[i]`` says where ``certificates[i]`` came from."""

    pem: bytes = b""
    certificates: tuple[x509.Certificate, ...] = ()
    warnings: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()

    def describe(self) -> tuple[str, ...]:
        """One line per certificate: subject, validity end, origin."""
        return tuple(
            f"{_subject(cert)} (expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; {origin})"
            for cert, origin in zip(self.certificates, self.origins)
        )


def merge(*bundles: TrustBundle) -> TrustBundle:
    """Several bundles as one (for instance the CA file and ``trustedCa``), in order."""
    return TrustBundle(
        pem=b"".join(b.pem for b in bundles),
        certificates=tuple(c for b in bundles for c in b.certificates),
        warnings=tuple(w for b in bundles for w in b.warnings),
        origins=tuple(o for b in bundles for o in b.origins),
    )


def parse_ca_file(text: str | bytes, source: str, *, now: datetime) -> TrustBundle:
    """A ``--custom-ca-trust-certificates`` file: :func:`parse_pem` with AKS's 10-certificate
    limit turned into a warning."""
    return parse_pem(text, source, now=now, limit=AKS_MAX_CERTIFICATES)


def parse_trusted_ca(value: str, source: str, *, now: datetime) -> TrustBundle:
    """An httpProxyConfig ``trustedCa``: base64 of PEM text (whitespace ignored)."""
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ConfigError(
            f"{source}: trustedCa {shown!r} is not valid base64 ({exc}); encode the PEM file with: base64 -w0 ca.pem"
        ) from None
    return parse_pem(data, f"{source} trustedCa", now=now)


def parse_pem(data: str | bytes, source: str, *, now: datetime, limit: int | None = None) -> TrustBundle:
    """PEM text → a validated :class:`TrustBundle`; see the module docstring for the rules."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{source}: not PEM text (binary data; convert a DER certificate with "
                "openssl x509 -inform der -in ca.der -out ca.pem)"
            ) from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    certs: list[x509.Certificate] = []
    origins: list[str] = []
    warnings: list[str] = []
    seen: dict[bytes, str] = {}
    for number, line, block in _blocks(data.removeprefix("\ufeff"), source):
        where = f"{source}: block {number} (line {line})"
        cert = _load(block, where)
        origin = f"{source} block {number}"
        fingerprint = cert.fingerprint(hashes.SHA256())
        if fingerprint in seen:
            warnings.append(f"{where}: certificate {_subject(cert)} repeats {seen[fingerprint]}")
        seen.setdefault(fingerprint, f"block {number}")
        warnings += _check(cert, where, now)
        certs.append(cert)
        origins.append(origin)
    if not certs:
        raise ConfigError(f"{source}: no certificates; expected PEM blocks starting with -----BEGIN CERTIFICATE-----")
    if limit is not None and len(certs) > limit:
        warnings.append(
            f"{source}: {len(certs)} certificates; AKS accepts at most {limit} per file (kproxy uses all {len(certs)})"
        )
    return TrustBundle(
        pem=b"".join(c.public_bytes(Encoding.PEM) for c in certs),
        certificates=tuple(certs),
        warnings=tuple(warnings),
        origins=tuple(origins),
    )


def _blocks(text: str, source: str) -> list[tuple[int, int, list[str]]]:
    """(block number, first line number, lines) per block; raises on non-PEM text."""
    lines = [line.strip() for line in text.splitlines()]
    blocks: list[tuple[int, int, list[str]]] = []
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        number, start = len(blocks) + 1, i + 1
        where = f"{source}: block {number} (line {start})"
        begin = _BEGIN.fullmatch(lines[i])
        if begin is None:
            raise ConfigError(f"{where}: not PEM: {_clip(lines[i])!r}; expected -----BEGIN CERTIFICATE-----")
        label = begin.group(1)
        if label != "CERTIFICATE":
            raise ConfigError(f"{where}: a PEM {label} block, not a CERTIFICATE")
        end = f"-----END {label}-----"
        j = i + 1
        while j < len(lines) and lines[j] != end:
            if not lines[j] or lines[j].startswith("-----"):
                raise ConfigError(f"{where}: no {end} line before line {j + 1}")
            j += 1
        if j == len(lines):
            raise ConfigError(f"{where}: no {end} line before the end of the file")
        blocks.append((number, start, lines[i : j + 1]))
        i = j + 1
    return blocks


def _load(block: list[str], where: str) -> x509.Certificate:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(("\n".join(block) + "\n").encode("utf-8"))
        cert.extensions  # noqa: B018 - parse them now: a malformed extension is this block's error
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid certificate: {exc}") from None
    return cert


def _check(cert: x509.Certificate, where: str, now: datetime) -> list[str]:
    from cryptography import x509

    subject = _subject(cert)
    out = []
    if cert.not_valid_after_utc < now:
        out.append(f"{where}: certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    if cert.not_valid_before_utc > now:
        out.append(
            f"{where}: certificate {subject} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        why = "basicConstraints CA:FALSE"
    except x509.ExtensionNotFound:
        is_ca, why = False, "no basicConstraints extension"
    if not is_ca:
        out.append(
            f"{where}: certificate {subject} is not a CA certificate ({why}); it cannot vouch for a server certificate"
        )
    return out


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
