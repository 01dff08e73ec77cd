"""HTTP requests to servers other than the API server (OIDC discovery and token refreshes),
by the same road as the API server's connections.

In: the :class:`~kproxy.config.egress_settings.Egress` settings in force (one source:
``--http-proxy-config`` > the kubeconfig's ``proxy-url`` > ``HTTPS_PROXY``/``NO_PROXY``, and
the custom CAs), the connect timeout and User-Agent of the API server's connections, and
per request a method, URL, headers, body and the CAs to trust. Out: the answer's status
and whole body (:class:`~kproxy.credentials.outbound.Reply`), or an
:class:`~kproxy.errors.UpstreamError` naming the host and the proxy (never credentials).

Each URL gets its own egress decision (:mod:`kproxy.policy.egress`: NO_PROXY may send an
issuer direct and the API server through the proxy, or the other way round) and the
dial goes through :func:`kproxy.upstream.tunnel.connect_via` like the API server's:
``CONNECT`` over TCP or TLS, SOCKS5, or absolute-form requests to an HTTP proxy for
``http://`` URLs. The issuer is trusted by its own CA (``idp-certificate-authority``)
or the system's, plus ``--custom-ca-trust-certificates``/``trustedCa`` — as the API
server is trusted by its CA plus those. One request per connection (``Connection:
close``): refreshes are rare. Redirects are followed for ``GET`` (Go's ``http.Client``,
at most 10), never for ``POST``.
"""

from __future__ import annotations

import asyncio
import http
import socket
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from kproxy.config.egress_settings import Egress
from kproxy.credentials import sources as credentials
from kproxy.credentials.outbound import Reply
from kproxy.errors import UpstreamError, UpstreamTimeout
from kproxy.policy.gonet import join_host_port
from kproxy.policy.headers import parse_header_lines
from kproxy.upstream.connection import UpstreamConnection
from kproxy.upstream.tls_reads import create_connection
from kproxy.upstream.tunnel import ProxyTLSFailure, connect_via

if TYPE_CHECKING:
    from kproxy.config.proxy_route import ProxyRoute

__all__ = ["OutboundHTTP"]

_MAX_BODY = 4 << 20  # a discovery document or a token answer is a few KiB
_MAX_REDIRECTS = 10  # Go's http.Client


class OutboundHTTP:
    """:class:`~kproxy.credentials.outbound.Outbound` over kproxy's dialing."""

    def __init__(self, egress: Egress, *, connect_timeout: float, user_agent: bytes = b"") -> None:
        self._egress = egress
        self._connect_timeout = connect_timeout
        self._user_agent = user_agent
        self._contexts: dict[bytes | None, ssl.SSLContext] = {}
        self._proxy_tls: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes = b"",
        ca_pem: bytes | None = None,
    ) -> Reply:
        for _ in range(_MAX_REDIRECTS + 1):
            status, location, data = await self._once(method, url, headers, body, ca_pem)
            if method != "GET" or status not in (301, 302, 303, 307, 308) or not location:
                return Reply(status, _reason(status), data)
            url = urljoin(url, location)
        raise UpstreamError(f"stopped after {_MAX_REDIRECTS} redirects at {url}")

    async def _once(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, ca_pem: bytes | None
    ) -> tuple[int, str, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"cannot request {url!r}: not an http or https URL")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        route = self._route(url)
        via = f" through the proxy {route.display} (from {route.source})" if route is not None else ""
        where = f"{join_host_port(host, str(port))}{via}"
        ctx = self._context(ca_pem) if scheme == "https" else None
        absolute = route is not None and route.absolute_form and ctx is None
        target = url.split("#", 1)[0] if absolute else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        head += self._user_agent + (route.authorization if absolute and route is not None else b"") + b"\r\n"
        conn = await self._dial(route, host, port, ctx, where)
        try:
            conn.start(method == "HEAD")
            conn.write(head + body)
            answer = await conn.response_head()
            chunks: list[bytes] = []
            size = 0
            while chunk := await conn.read_body():
                size += len(chunk)
                if size > _MAX_BODY:
                    raise UpstreamError(f"the answer from {where} is larger than {_MAX_BODY >> 20} MiB")
                chunks.append(chunk)
        finally:
            conn.abort()
        location = ""
        if 300 <= answer.status < 400:
            for name, value in parse_header_lines(answer.raw):
                if name.lower() == b"location":
                    location = value.decode("latin-1")
        return answer.status, location, b"".join(chunks)

    def _route(self, url: str) -> ProxyRoute | None:
        try:
            decision = self._egress.decide(url)
        except ValueError as exc:
            raise UpstreamError(f"cannot request {url!r}: {exc}") from None
        if decision.error:
            raise UpstreamError(f"cannot request {url}: {decision.rule}")
        if decision.proxy is None:
            return None
        proxy_tls = None
        if decision.proxy.scheme == "https":
            if self._proxy_tls is None:
                self._proxy_tls = credentials.proxy_tls_context(self._egress.trust.pem)
            proxy_tls = self._proxy_tls
        from kproxy.config.proxy_route import ProxyRoute  # with a proxy only (docs/startup.md §7)

        return ProxyRoute.from_url(decision.proxy, decision.source, proxy_tls)

    def _context(self, ca_pem: bytes | None) -> ssl.SSLContext:
        ctx = self._contexts.get(ca_pem)
        if ctx is None:
            extra = self._egress.trust.pem
            if ca_pem is None:
                ctx = credentials.proxy_tls_context(extra)  # the system's CAs and the custom ones
            else:
                ctx = credentials.tls_context(
                    ca_pem=ca_pem,
                    ca_field="idp-certificate-authority",
                    insecure=False,
                    cert_pem=None,
                    key_pem=None,
                    cert_field="",
                    key_field="",
                    extra_ca=extra,
                )
            self._contexts[ca_pem] = ctx
        return ctx

    async def _dial(
        self, route: ProxyRoute | None, host: str, port: int, ctx: ssl.SSLContext | None, where: str
    ) -> UpstreamConnection:
        from kproxy.policy.no_proxy import idna_ascii  # an issuer's name: not at start-up (docs/startup.md §7)

        server_hostname = host if ctx is not None else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if route is None:
                    _, conn = await create_connection(
                        UpstreamConnection, idna_ascii(host), port, ssl_context=ctx, server_hostname=server_hostname
                    )
                    return conn
                _, conn = await connect_via(
                    route,
                    host,
                    port,
                    UpstreamConnection,
                    ssl_context=ctx,
                    server_hostname=server_hostname,
                    tunnel=False,
                    user_agent=self._user_agent,
                )
                return conn
        except TimeoutError:
            raise UpstreamTimeout(f"timed out after {self._connect_timeout:g}s connecting to {where}") from None
        except ProxyTLSFailure as exc:
            raise UpstreamError(f"TLS handshake with the proxy for {where} failed: {exc.error.reason or exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(f"cannot verify the certificate of {where}: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise UpstreamError(f"TLS handshake with {where} failed: {exc.reason or exc}") from exc
        except socket.gaierror as exc:
            raise UpstreamError(f"cannot resolve {host!r}: {exc.strerror}") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {where}: {exc.strerror or exc}") from exc


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""
