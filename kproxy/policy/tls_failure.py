"""Why a TLS certificate was refused, in words a user can act on.

In: who was being reached (``the API server https://…`` or ``the proxy https://…``), the
name checked, the :class:`ssl.SSLCertVerificationError`, the peer's certificate (DER,
fetched again without verification by the caller; ``None`` when that failed too), and a
description of what was trusted. Out: one message, shaped like Go's ``x509`` errors
(which kubectl users will search for) with what to do about it:

- unknown authority (OpenSSL 2, 18, 19, 20, 21) → name the issuer, say what was trusted,
  suggest ``--custom-ca-trust-certificates``;
- name mismatch (62, 64) → list the names the certificate is valid for; a certificate
  with only a Common Name and no Subject Alternative Name gets Go's "relies on legacy
  Common Name field" and why: Go ignores the Common Name since 1.15, and kproxy, for
  parity, turns off Python's fallback to it (``hostname_checks_common_name``);
- expired or not yet valid (10, 9) → the dates.

No I/O; ``cryptography`` reads the certificate.
"""

from __future__ import annotations

import ipaddress
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["describe_verify_failure"]

_UNKNOWN_AUTHORITY = frozenset({2, 18, 19, 20, 21})
_NAME_MISMATCH = frozenset({62, 64})


def describe_verify_failure(
    what: str,
    name: str,
    exc: ssl.SSLCertVerificationError,
    peer_der: bytes | None,
    *,
    trusted: str,
    name_hint: str = "",
) -> str:
    code = exc.verify_code
    reason = exc.verify_message or exc.reason or str(exc)
    head = f"cannot verify the TLS certificate of {what}"
    cert = _load(peer_der)
    if code in _NAME_MISMATCH:
        names = _san_names(cert) if cert is not None else None
        if cert is not None and names is None:
            cn = _common_name(cert)
            return (
                f"{head}: x509: certificate relies on legacy Common Name field, use SANs instead "
                f"(it has no Subject Alternative Name, only the Common Name {cn!r}). Go, and so "
                "kubectl, ignore the Common Name since Go 1.15; kproxy does the same. Reissue the "
                f"certificate with a subjectAltName for {name!r} (DNS:{name} or IP:{name})"
            )
        if names:
            return f"{head}: x509: certificate is valid for {', '.join(names)}, not {name}" + (
                f"; {name_hint}" if name_hint else ""
            )
        return f"{head}: the certificate is not valid for {name} ({reason})"
    if code in _UNKNOWN_AUTHORITY:
        issuer = f"issued by {cert.issuer.rfc4514_string() or '(empty issuer)'}" if cert is not None else reason
        self_signed = " (self-signed)" if cert is not None and cert.issuer == cert.subject else ""
        return (
            f"{head}: x509: certificate signed by unknown authority ({issuer}{self_signed}); "
            f"trusted: {trusted}. If a corporate proxy or an internal CA signs it, trust that CA "
            "with --custom-ca-trust-certificates FILE (PEM)"
        )
    if code == 10 and cert is not None:
        return f"{head}: x509: certificate has expired (valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)"
    if code == 9 and cert is not None:
        return (
            f"{head}: x509: certificate is not yet valid (valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC); check this machine's clock"
        )
    return f"{head}: {reason}"


def _load(der: bytes | None) -> x509.Certificate | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def _san_names(cert: x509.Certificate) -> list[str] | None:
    """DNS names and IP addresses; ``None`` when there is no SAN extension at all."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [
        str(ip)
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    return names


def _common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[0].value if values else ""
    return value.decode("latin-1") if isinstance(value, bytes) else value
