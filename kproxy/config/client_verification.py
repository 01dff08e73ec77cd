"""Client certificates asked for in the handshake and judged after it, as kube-apiserver does.

In: a server ``ssl.SSLContext`` and the PEM CA bundle of ``--client-ca-file``. Out: the
context, set to request a client certificate, and :func:`verification_problem`, which
tells for a finished handshake's ``ssl.SSLObject`` whether its certificate chained to
the CA (``None``) or why not (OpenSSL's words: ``certificate has expired``).

Why (``docs/sharing.md`` §3): kube-apiserver asks for a client certificate without
requiring one (Go's ``tls.RequestClientCert``) and verifies it in its authenticator, so a
client with a missing or bad certificate gets an HTTP ``401`` it can read, not a TLS
alert. Python's ``ssl`` has no such mode: with ``CERT_OPTIONAL`` OpenSSL aborts the
handshake as soon as a presented certificate fails verification. So, where the running
Python allows it, kproxy installs OpenSSL's certificate-verification callback on the
context (``SSL_CTX_set_cert_verify_callback``, through ``ctypes``, from the very library
Python's ``_ssl`` uses): the callback runs OpenSSL's own ``X509_verify_cert`` — the same
check, with the same client-certificate purpose, that ``CERT_OPTIONAL`` would make —
records its verdict and lets the handshake finish. The verdict is picked up by the
connection's ``SSLObject`` (a subclass whose ``do_handshake`` collects it: the callback
runs inside that call, on the same thread) and read by the proxy on the first request.
Fail-closed: a handshake that presented a certificate and left no verdict (a resumed
session, which the contexts here never offer) counts as unverified.

Where the callback cannot be installed (not CPython, or OpenSSL's symbols not reachable),
the context stays plain ``CERT_OPTIONAL``: a bad certificate then ends the handshake with
a TLS alert, and :func:`request_client_certificates` says so for the start-up notice.
``ctypes`` and OpenSSL's symbols are loaded only when a context asks for client
certificates: a proxy without ``--client-ca-file`` never loads them.
"""

from __future__ import annotations

import ssl
import sys
import threading
from typing import Any

from kproxy.log import log

__all__ = ["request_client_certificates", "verification_problem"]

_NOT_VERIFIED = "the certificate was not verified"
_UNSET = object()
_SSL_CTRL_SET_SESS_CACHE_MODE = 44  # ssl.h; SSL_CTX_set_session_cache_mode is this ctrl
_SSL_SESS_CACHE_OFF = 0

_seen = threading.local()  # the verdict of the handshake step running on this thread


class _Judged(ssl.SSLObject):
    """An ``SSLObject`` that keeps the verification callback's verdict for its handshake."""

    kproxy_verdict: str | None = _NOT_VERIFIED  # fail closed until the callback has spoken

    def do_handshake(self) -> None:
        _seen.verdict = _UNSET
        try:
            super().do_handshake()
        finally:
            verdict = _seen.verdict
            _seen.verdict = _UNSET
            if verdict is not _UNSET:
                self.kproxy_verdict = verdict


class _OpenSSL:
    """The few libssl/libcrypto functions the callback needs, bound once."""

    def __init__(self) -> None:
        import _ssl
        import ctypes

        lib = ctypes.CDLL(_ssl.__file__)  # its symbols resolve through the OpenSSL it links
        self.callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        self.set_callback = _bind(
            lib.SSL_CTX_set_cert_verify_callback, None, [ctypes.c_void_p, self.callback_type, ctypes.c_void_p]
        )
        self.get_verify_mode = _bind(lib.SSL_CTX_get_verify_mode, ctypes.c_int, [ctypes.c_void_p])
        self.ctrl = _bind(
            lib.SSL_CTX_ctrl, ctypes.c_long, [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        )
        self.verify_cert = _bind(lib.X509_verify_cert, ctypes.c_int, [ctypes.c_void_p])
        self.get_error = _bind(lib.X509_STORE_CTX_get_error, ctypes.c_int, [ctypes.c_void_p])
        self.error_string = _bind(lib.X509_verify_cert_error_string, ctypes.c_char_p, [ctypes.c_long])
        self.callback = self.callback_type(self._verify)  # kept alive as long as the module

    def _verify(self, store_ctx: int | None, _arg: int | None) -> int:
        try:
            if self.verify_cert(store_ctx) == 1:
                _seen.verdict = None
            else:
                message = self.error_string(self.get_error(store_ctx))
                _seen.verdict = message.decode("ascii", "replace") if message else "verification failed"
        except Exception:  # never let an exception cross into OpenSSL; the verdict stays unset
            _seen.verdict = _NOT_VERIFIED
        return 1  # the handshake goes on; the proxy answers 401 on the verdict

    def install(self, context: ssl.SSLContext) -> bool:
        """Install the callback on ``context`` (already CERT_OPTIONAL); False if the
        context's OpenSSL object cannot be found with certainty."""
        pointer = self._pointer(context)
        if pointer is None:
            return False
        self.set_callback(pointer, self.callback, None)
        # No session resumption: a resumed handshake skips verification, so it would
        # carry no verdict (and fail closed). TLS 1.3 tickets and TLS 1.2 session ids.
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
        self.ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
        context.sslobject_class = _Judged
        return True

    def _pointer(self, context: ssl.SSLContext) -> int | None:
        # CPython's PySSLContext starts with the SSL_CTX pointer, right after the object
        # header (Modules/_ssl.c). Before using it, check that it answers as the context
        # does for two different verify modes.
        if sys.implementation.name != "cpython":
            return None
        import ctypes

        pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        if not pointer:
            return None
        expected = {ssl.CERT_REQUIRED: 3, ssl.CERT_OPTIONAL: 1}  # SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT
        for mode in (ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL):
            context.verify_mode = mode
            if self.get_verify_mode(pointer) != expected[mode]:
                return None
        return pointer


def _bind(function: Any, restype: Any, argtypes: list[Any]) -> Any:
    function.restype = restype
    function.argtypes = argtypes
    return function


def _load() -> _OpenSSL | None:
    try:
        return _OpenSSL()
    except (OSError, AttributeError, ImportError) as exc:
        log.debug("client certificates are verified in the handshake: %s", exc)
        return None


_OPENSSL: _OpenSSL | None | object = _UNSET  # loaded on first use


def _openssl() -> _OpenSSL | None:
    global _OPENSSL
    if _OPENSSL is _UNSET:
        _OPENSSL = _load()
    return _OPENSSL if isinstance(_OPENSSL, _OpenSSL) else None


def request_client_certificates(context: ssl.SSLContext, ca_pem: bytes) -> bool:
    """Ask clients of ``context`` for a certificate chaining to ``ca_pem`` (validated PEM).
    True when a bad one is judged after the handshake (see the module docstring)."""
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_OPTIONAL
    openssl = _openssl()
    if openssl is None:
        return False
    installed = openssl.install(context)
    context.verify_mode = ssl.CERT_OPTIONAL  # (the pointer check changed it)
    return installed


def verification_problem(ssl_object: object) -> str | None:
    """Why the client certificate of a finished handshake is not acceptable, or None.

    Call it only for a handshake that presented a certificate. A context without the
    callback verified it in the handshake (``CERT_OPTIONAL``): no problem to report.
    """
    verdict = getattr(ssl_object, "kproxy_verdict", None)
    return verdict if isinstance(verdict, str) else None
