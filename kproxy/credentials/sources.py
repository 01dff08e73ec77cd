"""Turn a selected kubeconfig cluster and user into what goes on the wire, and keep it fresh.

In: certificate and key bytes (read by :mod:`kproxy.config.upstream_tls`), the user's token,
basic-auth pair and impersonation settings. Out: an ``ssl.SSLContext`` for the API
server, the fixed request headers (``Authorization``, ``Impersonate-*``) and, for
credentials that change while kproxy runs, two small interfaces the relay and the
dialer consult:

* :class:`AuthSource` — the current ``Authorization`` header line. ``line`` is valid
  until the monotonic ``deadline``; past it, ``await fresh()``. After a 401,
  ``await after_401(used, started)`` refreshes once and says whether a different
  credential is now in use (so the request may be retried). Kinds: token files here,
  exec plugins in :mod:`kproxy.credentials.exec_plugin`, OIDC in :mod:`kproxy.credentials.oidc`.
* :class:`TLSSource` — the ``SSLContext`` for *new* connections and a ``generation``
  that changes with the client certificate, so the pool can drop connections made
  with an old one. Kinds: certificate files here (stat on dial and every minute,
  as client-go's cert rotation does), exec plugins returning certificates.

A static token or certificate needs neither: ``Upstream.auth_header`` and
``Upstream.ssl_context`` stay fixed and the hot path pays nothing.

Errors name the kubeconfig field or file at fault and never include key or token
material. Request-time failures are :class:`~kproxy.errors.UpstreamError` (502).
"""

from __future__ import annotations

import base64
import math
import os
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kproxy.credentials.outbound import Outbound
from kproxy.credentials.resumption import ResumingContext
from kproxy.errors import ConfigError
from kproxy.log import log
from kproxy.metrics import tally

__all__ = [
    "FILE_REREAD_PERIOD",
    "AuthSource",
    "CertFiles",
    "TLSSource",
    "TokenFile",
    "auth_header",
    "bearer_line",
    "impersonation_headers",
    "pem_file",
    "proxy_tls_context",
    "tls_context",
]

# client-go's NewCachedFileTokenSource: re-read every minute, with 10 s of leeway.
FILE_REREAD_PERIOD = 60.0
_FILE_LEEWAY = 10.0
# After a failed re-read, try again this soon (client-go retries on every request).
_RETRY_AFTER_ERROR = 1.0


# --------------------------------------------------------------------------- TLS


def tls_context(
    *,
    ca_pem: bytes | None,
    ca_field: str,
    insecure: bool,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    cert_field: str,
    key_field: str,
    extra_ca: bytes = b"",
) -> ssl.SSLContext:
    """The API server's context. ``extra_ca``: PEM CAs trusted besides the kubeconfig's CA
    (or the system store without one): ``--custom-ca-trust-certificates``, ``trustedCa``."""
    # The system trust store only where it is the trust anchor: client-go trusts only the
    # kubeconfig's CA when one is given, and nothing is verified when insecure. Loading
    # the store costs ~25 ms of start-up (docs/startup.md §2), each time a rotated client
    # certificate is loaded too.
    ctx = _client_context(system_roots=ca_pem is None and not insecure)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem is not None:
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{ca_field}: not a valid PEM certificate bundle ({_reason(exc)})") from None
    if extra_ca and not insecure:
        _load_extra(ctx, extra_ca)
    if (cert_pem is None) != (key_pem is None):
        missing = key_field if key_pem is None else cert_field
        raise ConfigError(f"{missing} is missing: a client certificate needs both a certificate and a key")
    if cert_pem is not None and key_pem is not None:
        with pem_file(cert_pem) as cert_path, pem_file(key_pem) as key_path:
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                    raise ConfigError(f"{key_field} does not match the certificate in {cert_field}") from None
                raise ConfigError(
                    f"{cert_field} / {key_field}: cannot load the client certificate and key "
                    f"({_reason(exc)}); both must be PEM"
                ) from None
    return ctx


def proxy_tls_context(extra_ca: bytes = b"") -> ssl.SSLContext:
    """For ``https://`` forward proxies: the system trust store plus ``extra_ca``, the
    certificate checked against the proxy's host name."""
    ctx = _client_context()
    if extra_ca:
        _load_extra(ctx, extra_ca)
    ctx.keep_alpn()  # http/1.1 to the proxy, whatever the tunnel carries
    return ctx


def _client_context(*, system_roots: bool = True) -> ResumingContext:
    # ssl.create_default_context(SERVER_AUTH), on a context that resumes TLS sessions;
    # TLS 1.2 at least (PROTOCOL_TLS_CLIENT's default since Python 3.10, said outright).
    ctx = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if system_roots:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    # Python 3.13 turns on VERIFY_X509_STRICT, which rejects real cluster CAs that Go
    # (and so kubectl) accepts, e.g. CAs without a keyUsage or AKI extension. kubectl
    # parity wins: verification stays on, the extra RFC 5280 pedantry goes.
    strict = getattr(ssl, "VERIFY_X509_STRICT", 0)
    ctx.verify_flags &= ~strict
    # Go ignores a certificate's Common Name since 1.15 (only SANs name the host);
    # Python falls back to it unless told not to.
    ctx.hostname_checks_common_name = False
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _load_extra(ctx: ssl.SSLContext, pem: bytes) -> None:
    try:
        ctx.load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:  # trust.py validated them; defensive
        raise ConfigError(f"custom CA certificates: cannot be loaded ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


@contextmanager
def pem_file(data: bytes) -> Iterator[str]:
    """A path for ``load_cert_chain``, which reads files only; never left on disk (the
    bytes loaded are exactly those read and checked, even if the file changes meanwhile)."""
    if sys.platform == "linux" and hasattr(os, "memfd_create"):
        fd = os.memfd_create("kproxy-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile  # elsewhere than Linux only: ~14 M instructions to import (docs/startup.md §6)

    fd, path = tempfile.mkstemp(prefix="kproxy-", suffix=".pem")
    try:
        os.write(fd, data)
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------- headers


def _valid_header_value(value: str) -> bool:
    # Go's httpguts.ValidHeaderFieldValue: no control characters except tab.
    return not any((c < " " and c != "\t") or c == "\x7f" for c in value)


def bearer_line(token: str, what: str) -> bytes:
    """``Authorization: Bearer TOKEN`` as a header line; ``what`` names the source in errors.

    Raises ``ValueError`` (message without the token) for a token Go's HTTP client
    would refuse to send: one with control characters would split the header.
    """
    if not _valid_header_value(token):
        raise ValueError(f"the token from {what} contains control characters (a line break?)")
    return b"Authorization: Bearer " + token.encode("utf-8") + b"\r\n"


def auth_header(token: str, username: str, password: str) -> bytes:
    if token:
        try:
            return bearer_line(token, "the kubeconfig or --token")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if username or password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        return f"Authorization: Basic {pair}\r\n".encode()
    return b""


# RFC 9110 §5.6.2 token characters: what may appear in a header name unescaped.
_TOKEN_CHARS = frozenset(b"!#$&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _extra_key_escape(key: str) -> str:
    # client-go transport.headerKeyEscape: bytes that are not header-name token
    # characters, and "%" itself, are percent-encoded (the API server unescapes them).
    return "".join(chr(b) if b in _TOKEN_CHARS else f"%{b:02X}" for b in key.encode("utf-8"))


def _canonical(name: str) -> str:
    # Go's Header.Add canonicalizes the name (textproto.CanonicalMIMEHeaderKey).
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def impersonation_headers(
    user: str, uid: str, groups: tuple[str, ...], extra: tuple[tuple[str, tuple[str, ...]], ...]
) -> bytes:
    """client-go's impersonatingRoundTripper headers. Raises ConfigError for unsendable values."""
    if not user:
        return b""  # client-go: groups, uid and extras without a user are not sent
    values = [user, uid, *groups, *(v for _, vs in extra for v in vs)]
    if not all(_valid_header_value(v) for v in values):
        raise ConfigError(
            "impersonation (as, as-uid, as-groups, as-user-extra or --as*): "
            "values must not contain control characters such as line breaks"
        )
    lines = [f"Impersonate-User: {user}\r\n"]
    if uid:
        lines.append(f"Impersonate-Uid: {uid}\r\n")
    lines += [f"Impersonate-Group: {group}\r\n" for group in groups]
    for key, key_values in extra:
        name = _canonical("Impersonate-Extra-" + _extra_key_escape(key))
        lines += [f"{name}: {value}\r\n" for value in key_values]
    return "".join(lines).encode("utf-8")


# --------------------------------------------------------------------------- sources


class AuthSource:
    """An ``Authorization`` header that can change while kproxy runs (see module docstring).

    ``line`` is the whole header line (``b""``: send none); it may be used while
    ``time.monotonic() < deadline``. Subclasses set both.
    """

    line: bytes = b""
    deadline: float = -math.inf
    refreshes_on_401 = False  # whether after_401 can ever say True (the relay keeps bodies then)

    async def fresh(self) -> bytes:
        """The current line, refreshed first if past its deadline. Raises UpstreamError."""
        raise NotImplementedError

    def use_outbound(self, outbound: Outbound) -> None:
        """How to reach servers other than the API server (an OIDC issuer), given by the
        server when it starts; sources that reach none ignore it."""

    async def after_401(self, used: bytes, started: float) -> bool:
        """The API server refused ``used`` for a request that picked it at ``started``.

        Refresh once (unless that already happened since ``started``); True when a
        different credential is now current and the request may be retried.
        """
        return False


class TLSSource:
    """The client side of TLS for new connections, when it can change (see module docstring)."""

    generation: int = 0
    check_at: float = math.inf  # monotonic time when check() wants to run again

    async def context(self) -> ssl.SSLContext:
        raise NotImplementedError

    def check(self, now: float) -> None:
        """Look for a new credential now (cheap; called by the pool when past check_at)."""


class TokenFile(AuthSource):
    """``tokenFile`` (and the in-cluster service account token): re-read about every minute.

    Like client-go's cachingTokenSource: a read that fails or finds the file empty keeps
    the last good token (and logs why); a 401 makes the next use re-read the file.
    """

    refreshes_on_401 = True

    def __init__(self, path: str, token: str, what: str) -> None:
        self._path = path
        self._what = what  # e.g. "users[alice].user.tokenFile (/path)"
        self.line = bearer_line(token, what)
        self._read_at = time.monotonic()
        self.deadline = self._read_at + FILE_REREAD_PERIOD - _FILE_LEEWAY

    async def fresh(self) -> bytes:
        if time.monotonic() >= self.deadline:
            self._reread()
        return self.line

    async def after_401(self, used: bytes, started: float) -> bool:
        if self._read_at <= started:
            self._reread()
        return self.line != used

    def _reread(self) -> None:
        now = time.monotonic()
        try:
            with open(self._path, encoding="utf-8", errors="replace") as file:
                token = file.read().strip()
            if not token:
                raise ValueError("the file is empty")
            line = bearer_line(token, self._what)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error("Unable to rotate token: cannot read %s: %s; keeping the previous token", self._what, reason)
            self.deadline = now + _RETRY_AFTER_ERROR
            tally.refresh("token_file", False)
            return
        tally.refresh("token_file", True)
        if line != self.line:
            log.debug("token from %s changed", self._what)
        self.line = line
        self._read_at = now
        self.deadline = now + FILE_REREAD_PERIOD - _FILE_LEEWAY


class CertFiles(TLSSource):
    """Client certificate and/or key from files, replaced on disk while kproxy runs.

    On every dial the files are stat()ed (client-go reloads them on every handshake);
    every minute the pool asks as well, so busy keep-alive connections also move to
    the new certificate. A pair that does not load (a half-written rotation: new
    certificate, old key) keeps the previous context and is retried on the next look.
    """

    def __init__(
        self,
        build: Callable[[bytes, bytes], ssl.SSLContext],
        cert: tuple[str | None, bytes],
        key: tuple[str | None, bytes],
        context: ssl.SSLContext,
        what: str,
    ) -> None:
        # cert/key: (path or None for inline data, the bytes loaded at start-up)
        self._build = build
        self._cert_path, self._cert = cert
        self._key_path, self._key = key
        self._ctx = context
        self._what = what
        self._stamp = self._stat()
        self.check_at = time.monotonic() + FILE_REREAD_PERIOD

    async def context(self) -> ssl.SSLContext:
        self._look()
        return self._ctx

    def check(self, now: float) -> None:
        self.check_at = now + FILE_REREAD_PERIOD
        self._look()

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self._cert_path, self._key_path):
            if path is None:
                continue
            try:
                st = os.stat(path)
            except OSError:
                stamps.append((0, 0, 0))
                continue
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    def _look(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            cert = _read(self._cert_path) if self._cert_path else self._cert
            key = _read(self._key_path) if self._key_path else self._key
        except OSError as exc:
            log.warning(
                "client certificate files changed but cannot be read (%s: %s); keeping the previous certificate",
                exc.filename,
                exc.strerror,
            )
            tally.refresh("cert_files", False)
            return
        if (cert, key) == (self._cert, self._key):
            self._stamp = stamp  # touched, not changed
            return
        try:
            ctx = self._build(cert, key)
        except ConfigError as exc:
            log.warning(
                "client certificate files changed but do not load (%s); keeping the previous certificate until they do",
                exc,
            )
            tally.refresh("cert_files", False)
            return
        self._stamp, self._cert, self._key, self._ctx = stamp, cert, key, ctx
        self.generation += 1
        tally.refresh("cert_files", True)
        log.info("client certificate %s changed: new connections use it, idle ones are closed", self._what)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
