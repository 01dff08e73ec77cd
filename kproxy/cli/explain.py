"""``kproxy --explain-egress [URL...]``: how kproxy reaches the API server, and why.

In: :class:`~kproxy.config.options.Options` (the proxy settings in force, the decision made for
the API server at start-up, the extra CAs) and URLs to try. Out: lines for stdout::

    proxy settings: the environment
      HTTP_PROXY   (not set)
      HTTPS_PROXY  http://proxy.corp:3128
      NO_PROXY     .svc, 10.0.0.0/8
    API server https://10.1.2.3:6443
      direct: NO_PROXY entry 10.0.0.0/8 matches 10.1.2.3
      TLS: server name 10.1.2.3; trusted: clusters[aks].cluster.certificate-authority-data
    https://example.com/
      proxy http://proxy.corp:3128 from HTTPS_PROXY (no NO_PROXY entry matches example.com)

No I/O: the CLI prints what this returns.
"""

from __future__ import annotations

from collections.abc import Sequence

from kproxy.config.options import Options
from kproxy.policy.egress import EgressConfig, ProxySetting, select

__all__ = ["explain_egress"]


def explain_egress(options: Options, urls: Sequence[str] = ()) -> list[str]:
    up = options.upstream
    egress = options.egress
    # No proxy set anywhere: start-up did not read the environment's settings (NO_PROXY,
    # REQUEST_METHOD); they are shown all the same, as the environment has them.
    config = egress.config if egress.config is not None else select(environ=options.environ)
    lines = [f"proxy settings: {egress.source}"]
    lines += [f"  {name:<12} {value}" for name, value in _settings(config)]
    lines.append(f"API server {up.display}")
    lines.append(f"  {up.egress}" if up.egress is not None else "  direct")
    if up.scheme == "https":
        lines.append(f"  TLS: server name {up.server_hostname}; trusted: {up.trusted}")
    if up.proxy is not None and up.proxy.kind == "https":
        lines.append(f"  TLS to the proxy {up.proxy.display}: server name {up.proxy.host}; trusted: {up.proxy_trusted}")
    for url in urls:
        lines.append(url)
        lines.append(f"  {config.explain(url)}")
    if egress.trust.certificates:
        lines.append("custom CAs (trusted for the API server and for https:// proxies):")
        lines += [f"  {line}" for line in egress.trust.describe()]
    lines += [f"warning: {w}" for w in options.warnings]
    return lines


def _settings(config: EgressConfig) -> list[tuple[str, str]]:
    def shown(setting: ProxySetting | None) -> str:
        if setting is None:
            return "(not set)"
        return setting.shown + setting.note

    if config.proxy_url is not None:
        return [("proxy-url", shown(config.proxy_url))]
    no_proxy = ", ".join(e.text for e in config.no_proxy.entries) or "(not set)"
    if config.source == "httpProxyConfig":
        return [("httpProxy", shown(config.http)), ("httpsProxy", shown(config.https)), ("noProxy", no_proxy)]
    rows = [
        (config.http.name if config.http else "HTTP_PROXY", shown(config.http)),
        (config.https.name if config.https else "HTTPS_PROXY", shown(config.https)),
        (config.no_proxy_name, no_proxy),
    ]
    if config.cgi:
        rows.append(("REQUEST_METHOD", "set (CGI: HTTP_PROXY is refused for http:// URLs)"))
    return rows
