"""How to reach the API server and what to add to every request, built once at start-up.

In: :class:`~kproxy.config.flags.Flags` (timeouts, keep-alive, ``--append-server-path``),
the :class:`~kproxy.config.kubeconfig_loading.Loaded` cluster and user, and the
:class:`~kproxy.config.egress_settings.Egress` settings. Out: :class:`Upstream`: the
server's address, TLS (:mod:`kproxy.config.upstream_tls`), the user's credential
(:mod:`kproxy.config.upstream_auth`), impersonation and User-Agent headers, and the
forward proxy decided for the server URL (it is fixed, so the decision is made once).
kubectl's server-path warning goes to the caller's list.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kproxy._version import __version__
from kproxy.config.egress_settings import Egress
from kproxy.config.flags import Flags
from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.upstream_auth import user_auth
from kproxy.config.upstream_tls import upstream_tls
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy.egress_decision import Decision

if TYPE_CHECKING:
    from kproxy.config.proxy_route import ProxyRoute

__all__ = ["Upstream", "build_upstream"]


@dataclass(frozen=True)
class Upstream:
    """How to reach the API server and what to add to every request."""

    scheme: str
    host: str
    port: int
    server_path: str
    display: str  # the server URL as configured, for messages (never has credentials)
    host_header: bytes  # host[:port] exactly as written in the kubeconfig
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None
    connect_timeout: float
    keepalive: float
    append_server_path: bool
    auth_header: bytes = field(default=b"", repr=False)  # fixed credential; b"" with auth
    impersonation_headers: bytes = b""
    user_agent_header: bytes = b""
    # Credentials that change while kproxy runs (token files, exec plugins, OIDC, rotated
    # certificate files). None: auth_header / ssl_context are all there is.
    auth: credentials.AuthSource | None = field(default=None, repr=False)
    tls: credentials.TLSSource | None = field(default=None, repr=False)
    # Egress, decided once at start-up (the server URL is fixed): the forward proxy, or
    # None for direct; the decision behind it; what is trusted, in words, for messages.
    proxy: ProxyRoute | None = None
    egress: Decision | None = None
    trusted: str = ""  # the API server's CAs
    proxy_trusted: str = ""  # an https:// proxy's CAs
    # Long-running requests over HTTP/2 when the server offers it (https:// only, as Go:
    # no cleartext HTTP/2); off with --disable-http2 or DISABLE_HTTP2.
    http2: bool = False


@dataclass(frozen=True)
class _Server:
    """The kubeconfig's server URL, taken apart."""

    scheme: str
    host: str  # bracket-free
    port: int
    netloc: str  # host[:port] as written, without userinfo
    path: str

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def build_upstream(
    flags: Flags, loaded: Loaded, egress: Egress, warnings: list[str], *, http2_env: str = ""
) -> Upstream:
    """Read the TLS material and credentials and decide the route. Raises ConfigError.
    ``http2_env``: ``DISABLE_HTTP2`` from the environment (client-go: any value disables)."""
    cluster, user = loaded.cluster, loaded.user
    server = _server(cluster.server)
    if server.path not in ("", "/") and not flags.append_server_path:
        warnings.append(
            f"Your kube context contains a server path {server.path}, "
            "use --append-server-path to automatically append the path to each request"
        )
    tls = upstream_tls(loaded, server.scheme, egress.trust.pem)
    auth = user_auth(loaded, tls)
    decision, proxy = _route(cluster.server, server.display, egress)
    trusted = (
        "nothing (insecure-skip-tls-verify)"
        if cluster.insecure_skip_tls_verify
        else egress.trusted(tls.ca_field or "the system trust store")
    )
    netloc = server.netloc
    return Upstream(
        scheme=server.scheme,
        host=server.host,
        port=server.port,
        server_path=server.path,
        display=server.display,
        host_header=netloc.encode("idna") if not netloc.isascii() else netloc.encode(),
        ssl_context=tls.context,
        server_hostname=cluster.tls_server_name or server.host,
        connect_timeout=flags.connect_timeout,
        keepalive=flags.keepalive,
        append_server_path=flags.append_server_path,
        auth_header=auth.header,
        impersonation_headers=credentials.impersonation_headers(
            user.impersonate, user.impersonate_uid, user.impersonate_groups, user.impersonate_extra
        ),
        user_agent_header=_user_agent(),
        auth=auth.source,
        tls=auth.tls if auth.tls is not None else tls.source,
        proxy=proxy,
        egress=decision,
        trusted=trusted if server.scheme == "https" else "",
        proxy_trusted=egress.trusted("the system trust store"),
        http2=server.scheme == "https" and not flags.disable_http2 and not http2_env,
    )


def _server(url_text: str) -> _Server:
    url = urlsplit(url_text)
    scheme = url.scheme.lower()
    try:
        port = url.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"server {url_text!r}: invalid port") from None
    return _Server(scheme, url.hostname or "", port, url.netloc.rpartition("@")[2], url.path)


def _route(server: str, display: str, egress: Egress) -> tuple[Decision, ProxyRoute | None]:
    """The egress decision for the API server, and the proxy to dial if any."""
    try:
        decision = egress.decide(server)
    except ValueError as exc:
        raise ConfigError(f"server {server!r}: {exc}") from None
    if decision.error:
        raise ConfigError(f"{decision.rule}; the API server {display} cannot be reached from here")
    if decision.proxy is None:
        return decision, None
    from kproxy.config.proxy_route import ProxyRoute  # with a proxy only (docs/startup.md §7)

    proxy_tls = credentials.proxy_tls_context(egress.trust.pem) if decision.proxy.scheme == "https" else None
    return decision, ProxyRoute.from_url(decision.proxy, decision.source, proxy_tls)


def _user_agent() -> bytes:
    return f"User-Agent: kproxy/{__version__} ({os.uname().sysname.lower()}/{_arch()})\r\n".encode()


def _arch() -> str:
    # Go's GOARCH names, as kubectl's User-Agent has them.
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
