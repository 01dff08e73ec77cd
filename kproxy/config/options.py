"""The one immutable options object, built once from flags, the environment and files.

In: :class:`~kproxy.config.flags.Flags` (kubectl's flag names, Python values), an
environment mapping and a working directory. Out: :class:`Options`, validated, with the
upstream TLS context and credentials ready, or a :class:`~kproxy.errors.ConfigError`.
:meth:`Options.from_flags` only orchestrates; each part has its module:

* :mod:`kproxy.config.listen`: where to listen;
* :mod:`kproxy.config.serving_tls`: HTTPS on kproxy's port, client certificates;
* :mod:`kproxy.config.identity`: what the API server sees (``--client-identity``);
* :mod:`kproxy.config.kubeconfig_loading`: which cluster and user (or in-cluster);
* :mod:`kproxy.config.egress_settings`: forward proxy settings and extra CAs;
* :mod:`kproxy.config.upstream`: how to reach the API server, with
  :mod:`kproxy.config.upstream_tls` and :mod:`kproxy.config.upstream_auth`;
* :mod:`kproxy.config.files`: reading files, and the authorized-ranges file;
* :mod:`kproxy.config.observability`: the admin listener and the access log.

The flags, environment and directory it was built from stay in the Options
(:meth:`Options.rebuilt`), so that a reload builds the configuration whole again, the
same way, from the files as they are then; :attr:`Options.reload_paths` lists the files
whose change calls for that.

The ``config`` package is the only one that reads the environment, kubeconfig and PEM
files at start-up; everything below receives plain values.

Start-up warnings kubectl prints (word for word) are collected in
``Options.warnings`` for the CLI to print; nothing here writes to stderr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kproxy.config.egress_settings import Egress, build_egress, origins
from kproxy.config.files import combine_ranges, load_ranges_file, resolve
from kproxy.config.flags import Flags
from kproxy.config.identity import identity_mode, identity_notice, upstream_selection
from kproxy.config.kubeconfig_loading import Loaded, load_kubeconfig
from kproxy.config.listen import Listen, listen_on
from kproxy.config.observability import Observability, observability
from kproxy.config.serving_tls import ServingTLS, serving_tls
from kproxy.config.upstream import Upstream, build_upstream
from kproxy.errors import ConfigError
from kproxy.policy.client_identity import IdentityMode
from kproxy.policy.cross_origin import CORS_METHODS, CorsPolicy
from kproxy.policy.filters import DEFAULT_ACCEPT_HOSTS, RequestFilter
from kproxy.policy.gonet import is_loopback_host
from kproxy.policy.ranges import AuthorizedRanges, IPNetwork, parse_trusted_proxies
from kproxy.policy.routing import Router, normalize_prefix

__all__ = ["Options"]


def _no_ranges() -> AuthorizedRanges:
    return AuthorizedRanges(())


def _no_cors() -> CorsPolicy:
    return CorsPolicy.parse("")


@dataclass(frozen=True)
class Options:
    listen: Listen
    router: Router
    request_filter: RequestFilter | None  # None with --disable-filter
    www: str  # absolute directory, "" when static serving is off
    upstream: Upstream
    authorized_ranges: AuthorizedRanges = field(default_factory=_no_ranges)
    authorized_ranges_file: str = ""  # absolute; re-read on SIGHUP and when it changes
    authorized_ranges_flag: AuthorizedRanges = field(default_factory=_no_ranges)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    warnings: tuple[str, ...] = ()  # kubectl's start-up warnings, word for word
    notices: tuple[str, ...] = ()  # one line per kproxy feature in use
    egress: Egress = field(default_factory=Egress)
    serving_tls: ServingTLS | None = None  # None: plain HTTP
    client_identity: IdentityMode = "proxy"
    cors: CorsPolicy = field(default_factory=_no_cors)  # --cors-allowed-origins
    observe: Observability = field(default_factory=Observability)
    # What it was built from (None: made by hand, it cannot be rebuilt), and the files
    # whose change rebuilds the upstream: kubeconfigs, the CA files, --http-proxy-config.
    flags: Flags | None = field(default=None, repr=False)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str = ""
    reload_paths: tuple[str, ...] = ()
    # Client deadlines, seconds (0: off): kproxy.http.deadlines.
    read_header_timeout: float = 0.0
    idle_timeout: float = 0.0

    @classmethod
    def from_flags(
        cls,
        flags: Flags,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Options:
        """Validate ``flags`` and load the kubeconfig they name. Raises :class:`ConfigError`.

        The order is the order of errors and warnings: listening (and its TLS), the
        client identity, the kubeconfig, egress, the upstream, routes, the filter,
        cross-origin rules, static files, client ranges.
        """
        env = dict(os.environ if environ is None else environ)  # a snapshot: reloads see the same
        base = cwd or os.getcwd()
        warnings: list[str] = []
        listen = listen_on(flags)
        serving = serving_tls(flags, base, warnings)
        mode = identity_mode(flags, serving)
        loaded = load_kubeconfig(flags, env, base)
        egress = build_egress(flags, loaded.cluster, env, base, warnings)
        warnings.extend(loaded.notes)
        upstream = build_upstream(
            flags, upstream_selection(mode, loaded), egress, warnings, http2_env=env.get("DISABLE_HTTP2", "")
        )
        router, www = _routes(flags, base)
        request_filter = _request_filter(flags, warnings)
        cors = _cors(flags, request_filter)
        warnings.extend(_www_warnings(flags.www, www))
        clients = _Clients.from_flags(flags, base)
        warnings.extend(_exposure_warnings(flags, listen, clients.ranges, serving, mode))
        sharing = [serving.describe()] if serving is not None else []
        if mode != "proxy":
            sharing.append(identity_notice(mode, loaded))
        observe = observability(flags, env, base)
        return cls(
            listen=listen,
            router=router,
            request_filter=request_filter,
            www=www,
            upstream=upstream,
            authorized_ranges=clients.ranges,
            authorized_ranges_file=clients.ranges_file,
            authorized_ranges_flag=clients.flag_ranges,
            trusted_proxies=clients.trusted,
            warnings=tuple(warnings),
            notices=(*_egress_notices(upstream, egress), *clients.notices(), *_cors_notices(flags), *sharing),
            egress=egress,
            serving_tls=serving,
            client_identity=mode,
            cors=cors,
            observe=observe,
            flags=flags,
            environ=env,
            cwd=base,
            reload_paths=_reload_paths(flags, loaded, base),
            read_header_timeout=_deadline("--read-header-timeout", flags.read_header_timeout),
            idle_timeout=_deadline("--idle-timeout", flags.idle_timeout),
        )

    def rebuilt(self) -> Options:
        """The same flags and environment, the files as they are now: the whole
        configuration built and checked again (raises ConfigError; this one stays as it is)."""
        if self.flags is None:
            raise ConfigError("these options were not built from flags: there is nothing to reload them from")
        return Options.from_flags(self.flags, self.environ, self.cwd)


def _reload_paths(flags: Flags, loaded: Loaded, base: str) -> tuple[str, ...]:
    """The files whose change rebuilds the upstream: the kubeconfig files kubectl would
    read (a KUBECONFIG entry missing now may appear later), the certificate-authority
    file the cluster names, the custom CA file and the AKS proxy configuration."""
    paths = list(loaded.files)
    if loaded.cluster.certificate_authority:
        paths.append(loaded.cluster.certificate_authority)
    for extra in (flags.custom_ca_trust_certificates, flags.http_proxy_config):
        if extra:
            paths.append(resolve(base, extra))
    return tuple(dict.fromkeys(paths))


@dataclass(frozen=True)
class _Clients:
    """Who may use the proxy: --authorized-ip-ranges (and its file), --trusted-proxies."""

    flag_ranges: AuthorizedRanges
    ranges: AuthorizedRanges  # the flag's and the file's
    ranges_file: str
    trusted: tuple[IPNetwork, ...]

    @classmethod
    def from_flags(cls, flags: Flags, base: str) -> _Clients:
        flag_ranges = AuthorizedRanges.parse(flags.authorized_ip_ranges)
        ranges_file = ""
        ranges = flag_ranges
        if flags.authorized_ip_ranges_file:
            ranges_file = resolve(base, flags.authorized_ip_ranges_file)
            ranges = combine_ranges(flag_ranges, load_ranges_file(ranges_file))
        return cls(flag_ranges, ranges, ranges_file, parse_trusted_proxies(flags.trusted_proxies))

    def notices(self) -> list[str]:
        notices = [self.ranges.describe()] if self.ranges.enabled else []
        if self.trusted:
            notices.append(
                f"trusting X-Forwarded-For from {len(self.trusted)} front proxy range(s): "
                + ",".join(str(n) for n in self.trusted)
            )
        return notices


def _deadline(flag: str, seconds: float) -> float:
    if seconds < 0:
        raise ConfigError(f"{flag} {seconds:g}s: must not be negative (0 turns it off)")
    return seconds


def _routes(flags: Flags, base: str) -> tuple[Router, str]:
    """The API prefix and, with --www, the static directory (absolute) and its prefix."""
    api_prefix = normalize_prefix("--api-prefix", flags.api_prefix)
    if not flags.www:
        return Router(api_prefix, None), ""
    www = resolve(base, flags.www)
    return Router(api_prefix, normalize_prefix("--www-prefix", flags.www_prefix)), www


def _request_filter(flags: Flags, warnings: list[str]) -> RequestFilter | None:
    if not flags.disable_filter:
        return RequestFilter.compile(
            accept_paths=flags.accept_paths,
            reject_paths=flags.reject_paths,
            accept_hosts=flags.accept_hosts,
            reject_methods=flags.reject_methods,
        )
    if not flags.unix_socket:
        warnings.append("Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious")
    return None


def _cors(flags: Flags, request_filter: RequestFilter | None) -> CorsPolicy:
    """--cors-allowed-origins; preflights are granted the methods the filter lets through."""
    methods = [m for m in CORS_METHODS if request_filter is None or not request_filter.rejects_method(m)]
    return CorsPolicy.parse(flags.cors_allowed_origins, methods)


def _cors_notices(flags: Flags) -> list[str]:
    if not flags.cors_allowed_origins:
        return []
    return [f"cross-origin requests allowed from {flags.cors_allowed_origins.replace(',', ', ')}"]


def _www_warnings(flag: str, www: str) -> list[str]:
    """kubectl's words when the --www directory is missing or not a directory (it serves anyway)."""
    if not www:
        return []
    try:
        if not os.path.isdir(www):
            os.stat(www)
            return [f"Static file directory {flag} is not a directory"]
    except OSError as exc:
        return [f"Failed to stat static file directory {flag}: stat {flag}: {(exc.strerror or str(exc)).lower()}"]
    return []


def _exposure_warnings(
    flags: Flags, listen: Listen, ranges: AuthorizedRanges, serving: ServingTLS | None, mode: IdentityMode
) -> list[str]:
    """kproxy's own warnings: reachable from elsewhere, with nothing but the filter in the way
    and the filter relaxed; clients' own credentials crossing the network in clear."""
    if listen.unix_socket or is_loopback_host(listen.host):
        return []
    if mode == "passthrough":
        if serving is not None:
            return []
        return [
            f"Listening on {flags.address} without --tls-cert-file in --client-identity passthrough mode: clients' "
            "own credentials cross the network unencrypted; serve TLS with --tls-cert-file"
        ]
    if ranges.enabled or (serving is not None and serving.client_ca_file):
        return []  # clients are chosen by address, or must present a certificate
    if not flags.disable_filter and flags.accept_hosts == DEFAULT_ACCEPT_HOSTS:
        return []
    return [
        f"Listening on {flags.address} with a relaxed --accept-hosts and no "
        "--authorized-ip-ranges: anyone who can reach this port can use your cluster "
        "credentials; restrict clients with --authorized-ip-ranges"
    ]


def _egress_notices(upstream: Upstream, egress: Egress) -> list[str]:
    notices = []
    if upstream.proxy is not None:
        notices.append(
            f"reaching the API server {upstream.display} through the proxy "
            f"{upstream.proxy.display} (from {upstream.proxy.source})"
        )
    if egress.trust.certificates:
        notices.append(
            f"trusting {len(egress.trust.certificates)} extra CA certificate(s) for the API "
            f"server and https:// proxies, from {origins(egress.trust)}"
        )
    return notices
