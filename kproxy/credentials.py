"""Turn a selected kubeconfig cluster and user into what goes on the wire.

In: certificate and key bytes (read by :mod:`kproxy.options`), the user's token,
basic-auth pair and impersonation settings. Out: an ``ssl.SSLContext`` for the API
server and the fixed request headers (``Authorization``, ``Impersonate-*``).

Errors name the kubeconfig field at fault and never include key or token material.
"""

from __future__ import annotations

import base64
import os
import ssl
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConfigError

__all__ = ["auth_header", "impersonation_headers", "tls_context"]


def tls_context(
    *,
    ca_pem: bytes | None,
    ca_field: str,
    insecure: bool,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    cert_field: str,
    key_field: str,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    # Python 3.13 turns on VERIFY_X509_STRICT, which rejects real cluster CAs that Go
    # (and so kubectl) accepts, e.g. CAs without a keyUsage or AKI extension. kubectl
    # parity wins: verification stays on, the extra RFC 5280 pedantry goes.
    strict = getattr(ssl, "VERIFY_X509_STRICT", 0)
    ctx.verify_flags &= ~strict
    ctx.set_alpn_protocols(["http/1.1"])
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem is not None:
        # client-go trusts only the kubeconfig's CA when one is given, not the system roots.
        ctx = _fresh_context_like(ctx)
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{ca_field}: not a valid PEM certificate bundle ({_reason(exc)})") from None
    if (cert_pem is None) != (key_pem is None):
        missing = key_field if key_pem is None else cert_field
        raise ConfigError(f"{missing} is missing: a client certificate needs both a certificate and a key")
    if cert_pem is not None and key_pem is not None:
        with _pem_file(cert_pem) as cert_path, _pem_file(key_pem) as key_path:
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                    raise ConfigError(
                        f"{key_field} does not match the certificate in {cert_field}"
                    ) from None
                raise ConfigError(
                    f"{cert_field} / {key_field}: cannot load the client certificate and key "
                    f"({_reason(exc)}); both must be PEM"
                ) from None
    return ctx


def _fresh_context_like(template: ssl.SSLContext) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_flags = template.verify_flags
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


@contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """A path for ``load_cert_chain``, which reads files only; never left on disk."""
    if sys.platform == "linux" and hasattr(os, "memfd_create"):
        fd = os.memfd_create("kproxy-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="kproxy-", suffix=".pem")
    try:
        os.write(fd, data)
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def auth_header(token: str, username: str, password: str) -> bytes:
    if token:
        return b"Authorization: Bearer " + token.encode() + b"\r\n"
    if username or password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        return f"Authorization: Basic {pair}\r\n".encode()
    return b""


def impersonation_headers(
    user: str, uid: str, groups: tuple[str, ...], extra: tuple[tuple[str, tuple[str, ...]], ...]
) -> bytes:
    if not user:
        return b""  # client-go: groups, uid and extras without a user are not sent
    lines = [f"Impersonate-User: {user}\r\n"]
    if uid:
        lines.append(f"Impersonate-Uid: {uid}\r\n")
    lines += [f"Impersonate-Group: {group}\r\n" for group in groups]
    for key, values in extra:
        lines += [f"Impersonate-Extra-{key}: {value}\r\n" for value in values]
    return "".join(lines).encode()
