"""kproxy's errors: one shallow tree, each error knowing how it is reported.

::

    KproxyError
    ├── ConfigError          bad flags, kubeconfig, files: reported at start-up, exit 1
    └── RequestError         a request that cannot be served: rendered as a Kubernetes Status
        ├── BadRequest       400 (service_urls.InvalidProxyURL: a malformed proxy URL)
        │   └── MalformedRequest  400 as Go's server gives it (plain text, connection closed)
        ├── Unauthorized     401: no valid client certificate (--client-ca-file)
        ├── Forbidden        403
        ├── UpstreamError    502: the API server could not be reached (connect, DNS, TLS)
        └── UpstreamTimeout  504: connecting to the API server took too long

Messages name the bad value and what would be right. They never contain credentials:
callers pass server URLs and file names, never tokens, keys or passwords. Errors on the
way to the API server say which kind they are (``cause``: connect, tls, timeout, proxy,
reset, protocol; None for a credential that could not be obtained), for the
``kproxy_upstream_errors_total`` metric; refusals say why (``refusal``), for
``kproxy_rejected_total``.
"""

from __future__ import annotations

import copy
import json
from typing import Any, TypeVar

from kproxy.metrics import RejectReason, UpstreamErrorKind

__all__ = [
    "BadRequest",
    "ConfigError",
    "Forbidden",
    "KproxyError",
    "MalformedRequest",
    "RequestError",
    "UpstreamError",
    "Unauthorized",
    "UpstreamTimeout",
    "fresh",
    "status_body",
]

_E = TypeVar("_E", bound=BaseException)


class KproxyError(Exception):
    """Base of every error kproxy raises on purpose."""


class ConfigError(KproxyError):
    """Invalid configuration: flags, kubeconfig, files. The CLI prints it and exits 1."""


class RequestError(KproxyError):
    """A request kproxy answers itself with a Kubernetes ``Status``."""

    status: int = 500
    reason: str = "InternalError"
    cause: UpstreamErrorKind | None = None  # set on errors reaching the API server
    refusal: RejectReason | None = None  # set on requests kproxy refuses

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        return status_body(self.status, self.reason, self.message)


class BadRequest(RequestError):
    status = 400
    reason = "BadRequest"
    refusal = "bad_request"


class MalformedRequest(BadRequest):
    """What Go's HTTP server refuses before any handler runs (too many or no ``Host``,
    a malformed ``Host``): answered in Go's words as plain text, and the connection ends."""


class Unauthorized(RequestError):
    """The client did not prove who it is: no client certificate, or one that failed
    verification or names no user (``--client-ca-file``)."""

    status = 401
    reason = "Unauthorized"
    refusal = "client_auth"


class Forbidden(RequestError):
    status = 403
    reason = "Forbidden"

    def __init__(self, message: str, refusal: RejectReason | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class UpstreamError(RequestError):
    # Kubernetes has no reason for 502; ServiceUnavailable is what the API server itself
    # reports when its own proxying cannot reach a backend, so clients already know it.
    status = 502
    reason = "ServiceUnavailable"

    def __init__(self, message: str, cause: UpstreamErrorKind | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class UpstreamTimeout(RequestError):
    status = 504
    reason = "Timeout"
    cause = "timeout"


def fresh(error: _E) -> _E:
    """A new exception like ``error`` (its type, message and attributes, no traceback), to
    raise in its place. An error stored on a connection and raised each time it is asked
    for would tie its traceback's frames — the connection among their locals — to itself
    in a reference cycle, which only the collector's next full pass frees: the memory of
    every churned watch."""
    return copy.copy(error)


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    """A ``meta/v1 Status`` object, as the API server writes it."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return json.dumps(status).encode() + b"\n"
