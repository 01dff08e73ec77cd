"""The forward proxy every connection to the API server goes through, decided at start-up.

In: the proxy URL the egress decision chose (:mod:`kproxy.policy.egress`), the setting it
came from, and the TLS context for an ``https://`` proxy. Out: :class:`ProxyRoute`, frozen:
how to dial the proxy (kind, IDNA host, port), what to call it in messages (never with
its credentials) and the ``Proxy-Authorization`` line from the URL's userinfo. The
dialing itself is :mod:`kproxy.upstream.tunnel`'s.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from typing import Literal

from kproxy.policy.go_url import GoURL
from kproxy.policy.no_proxy import idna_ascii

__all__ = ["ProxyRoute"]

# Go's portMap (net/http/transport.go): the default port per proxy scheme. Any other
# scheme is spoken to as a plain HTTP proxy, and without an explicit port Go dials port 0.
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080}


@dataclass(frozen=True)
class ProxyRoute:
    """The forward proxy every connection to the API server goes through."""

    kind: Literal["http", "https", "socks5"]  # socks5h is socks5; any other scheme: "http"
    host: str  # bracket-free, IDNA-encoded
    port: int  # 0: the URL has none and its scheme has no default (every dial fails)
    display: str  # scheme://host:port for messages: no credentials, ever
    source: str  # the setting it came from: "HTTPS_PROXY", "kubeconfig proxy-url", ...
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)  # https:// proxies

    @classmethod
    def from_url(cls, url: GoURL, source: str, ssl_context: ssl.SSLContext | None) -> ProxyRoute:
        scheme = url.scheme
        kind: Literal["http", "https", "socks5"] = (
            "socks5" if scheme in ("socks5", "socks5h") else "https" if scheme == "https" else "http"
        )
        host = idna_ascii(url.hostname)
        port = int(url.port) if url.port else _DEFAULT_PORTS.get(scheme, 0)
        if port > 65535:
            port = 0
        display = f"{scheme}://{f'[{host}]' if ':' in host else host}" + (f":{url.port}" if url.port else "")
        return cls(
            kind, host, port, display, source, url.username, url.password, ssl_context if kind == "https" else None
        )

    @property
    def credentials(self) -> bool:
        return self.username is not None

    @property
    def authorization(self) -> bytes:
        """The ``Proxy-Authorization`` header line, or ``b""`` without userinfo (§4: the
        percent-decoded user and password; no password still gives ``user:``)."""
        if self.username is None:
            return b""
        pair = f"{self.username}:{self.password or ''}".encode()
        return b"Proxy-Authorization: Basic " + base64.b64encode(pair) + b"\r\n"

    @property
    def absolute_form(self) -> bool:
        """True when plain ``http://`` requests are sent to it in absolute form (no tunnel)."""
        return self.kind != "socks5"
