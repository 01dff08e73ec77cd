"""The API server's proxy URLs: parse, build and validate them.

The public face of :mod:`kproxy.policy.service_urls` (documented in the README); the
implementation lives there.
"""

from kproxy.policy.service_urls import (
    FORMS,
    InvalidProxyURL,
    Kind,
    ProxyTarget,
    parse,
    proxy_path,
    proxy_url,
    target,
    validate,
)

__all__ = [
    "FORMS",
    "InvalidProxyURL",
    "Kind",
    "ProxyTarget",
    "parse",
    "proxy_path",
    "proxy_url",
    "target",
    "validate",
]
