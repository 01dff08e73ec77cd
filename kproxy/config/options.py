"""The one immutable options object, built once from flags, the environment and files.

In: :class:`Flags` (kubectl's flag names, Python values), an environment mapping and a
working directory. Out: :class:`Options`, validated, with the upstream TLS context and
credentials ready. This is the only module that reads the environment, kubeconfig and
PEM files; everything below receives plain values.

Start-up warnings kubectl prints (word for word) are collected in
``Options.warnings`` for the CLI to print; nothing here writes to stderr.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kproxy._version import __version__
from kproxy.config import incluster
from kproxy.config.flags import Flags
from kproxy.config.proxy_route import ProxyRoute
from kproxy.credentials import exec_plugin, oidc
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy import exec_credential, kubeconfig
from kproxy.policy.egress import Decision, EgressConfig, select
from kproxy.policy.filters import (
    DEFAULT_ACCEPT_HOSTS,
    RequestFilter,
)
from kproxy.policy.gonet import is_loopback_host
from kproxy.policy.ranges import AuthorizedRanges, IPNetwork, parse_trusted_proxies
from kproxy.policy.routing import Router, normalize_prefix
from kproxy.policy.trust import TrustBundle, merge, parse_ca_file, parse_pem

__all__ = ["Egress", "Flags", "Listen", "Options", "Upstream"]


@dataclass(frozen=True)
class Listen:
    host: str  # bracket-free, ready for bind(); "" with a unix socket
    port: int
    unix_socket: str
    dual_stack: bool  # kubectl's 0.0.0.0 listens on [::] for both families


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


@dataclass(frozen=True)
class Egress:
    """The proxy settings in force (one source, :func:`kproxy.policy.egress.select`) and the
    extra CAs, for ``--explain-egress``."""

    config: EgressConfig = field(default_factory=EgressConfig)
    source: str = "the environment"  # how the winning source is named for people
    trust: TrustBundle = field(default_factory=TrustBundle)


@dataclass(frozen=True)
class Options:
    listen: Listen
    router: Router
    request_filter: RequestFilter | None  # None with --disable-filter
    www: str  # absolute directory, "" when static serving is off
    upstream: Upstream
    authorized_ranges: AuthorizedRanges = field(default_factory=lambda: AuthorizedRanges(()))
    authorized_ranges_file: str = ""  # absolute; re-read on SIGHUP and when it changes
    authorized_ranges_flag: AuthorizedRanges = field(default_factory=lambda: AuthorizedRanges(()))
    trusted_proxies: tuple[IPNetwork, ...] = ()
    warnings: tuple[str, ...] = ()  # kubectl's start-up warnings, word for word
    notices: tuple[str, ...] = ()  # one line per kproxy feature in use
    egress: Egress = field(default_factory=Egress)

    @classmethod
    def from_flags(
        cls,
        flags: Flags,
        environ: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Options:
        """Validate ``flags`` and load the kubeconfig they name. Raises :class:`ConfigError`."""
        env = os.environ if environ is None else environ
        base = cwd or os.getcwd()
        warnings: list[str] = []

        if flags.unix_socket and flags.port != 8001:
            # kubectl compares with the default, so an explicit --port=8001 is accepted.
            raise ConfigError("cannot set --unix-socket and --port at the same time")
        if not 0 <= flags.port <= 65535:
            raise ConfigError(f"--port {flags.port}: must be between 0 and 65535")
        listen = _listen(flags)

        selected = _select_kubeconfig(flags, env, base)
        notices: list[str] = []
        egress = _egress(flags, selected.cluster, env, base, warnings)
        upstream = _upstream(flags, selected, warnings, egress)
        if upstream.proxy is not None:
            notices.append(
                f"reaching the API server {upstream.display} through the proxy "
                f"{upstream.proxy.display} (from {upstream.proxy.source})"
            )
        if egress.trust.certificates:
            notices.append(
                f"trusting {len(egress.trust.certificates)} extra CA certificate(s) for the API "
                f"server and https:// proxies, from {_origins(egress.trust)}"
            )

        api_prefix = normalize_prefix("--api-prefix", flags.api_prefix)
        www = ""
        www_prefix: str | None = None
        if flags.www:
            www = os.path.join(base, os.path.expanduser(flags.www))
            www_prefix = normalize_prefix("--www-prefix", flags.www_prefix)
        router = Router(api_prefix, www_prefix)

        request_filter = None
        if not flags.disable_filter:
            request_filter = RequestFilter.compile(
                accept_paths=flags.accept_paths,
                reject_paths=flags.reject_paths,
                accept_hosts=flags.accept_hosts,
                reject_methods=flags.reject_methods,
            )
        elif not flags.unix_socket:
            warnings.append("Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious")
        if www:
            try:
                if not os.path.isdir(www):
                    os.stat(www)
                    warnings.append(f"Static file directory {flags.www} is not a directory")
            except OSError as exc:
                warnings.append(
                    f"Failed to stat static file directory {flags.www}: "
                    f"stat {flags.www}: {(exc.strerror or str(exc)).lower()}"
                )
        flag_ranges = AuthorizedRanges.parse(flags.authorized_ip_ranges)
        ranges_file = ""
        ranges = flag_ranges
        if flags.authorized_ip_ranges_file:
            ranges_file = os.path.join(base, os.path.expanduser(flags.authorized_ip_ranges_file))
            ranges = combine_ranges(flag_ranges, load_ranges_file(ranges_file))
        trusted = parse_trusted_proxies(flags.trusted_proxies)
        if ranges.enabled:
            notices.append(ranges.describe())
        if trusted:
            notices.append(
                f"trusting X-Forwarded-For from {len(trusted)} front proxy range(s): "
                + ",".join(str(n) for n in trusted)
            )
        if (
            not listen.unix_socket
            and not is_loopback_host(listen.host)
            and not ranges.enabled
            and (flags.disable_filter or flags.accept_hosts != DEFAULT_ACCEPT_HOSTS)
        ):
            warnings.append(
                f"Listening on {flags.address} with a relaxed --accept-hosts and no "
                "--authorized-ip-ranges: anyone who can reach this port can use your cluster "
                "credentials; restrict clients with --authorized-ip-ranges"
            )
        return cls(
            listen=listen,
            router=router,
            request_filter=request_filter,
            www=www,
            upstream=upstream,
            authorized_ranges=ranges,
            authorized_ranges_file=ranges_file,
            authorized_ranges_flag=flag_ranges,
            trusted_proxies=trusted,
            warnings=tuple(warnings),
            notices=tuple(notices),
            egress=egress,
        )


def load_ranges_file(path: str) -> AuthorizedRanges:
    """Read an authorized-ranges file (startup and every reload). Raises ConfigError."""
    text = _read(path, "--authorized-ip-ranges-file").decode("utf-8", "replace")
    return AuthorizedRanges.parse_file_text(text, source=path)


def combine_ranges(flag: AuthorizedRanges, from_file: AuthorizedRanges) -> AuthorizedRanges:
    return AuthorizedRanges(flag.networks + from_file.networks)


def _listen(flags: Flags) -> Listen:
    if flags.unix_socket:
        return Listen("", 0, flags.unix_socket, False)
    host = flags.address.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError('--address "": give an IP address or host name to listen on, e.g. 127.0.0.1')
    if host == "localhost":
        host = "127.0.0.1"  # Go binds the first address localhost resolves to
    dual = host == "0.0.0.0"
    return Listen("::" if dual else host, flags.port, "", dual)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# Environment variables kproxy itself reads (besides kubectl's KUBECONFIG and HOME):
# KPROXY_SERVICE_ACCOUNT_DIR replaces /var/run/secrets/kubernetes.io/serviceaccount for
# in-cluster configuration (tests); KPROXY_EXEC_PLUGIN_TIMEOUT (seconds) bounds one run
# of an exec credential plugin.
_SA_DIR_ENV = "KPROXY_SERVICE_ACCOUNT_DIR"
_EXEC_TIMEOUT_ENV = "KPROXY_EXEC_PLUGIN_TIMEOUT"

# kubectl's words for the auth-providers it removed (client-go gcp_stub.go, azure_stub.go).
_REMOVED_PROVIDERS = {
    "gcp": 'The gcp auth plugin has been removed.\nPlease use the "gke-gcloud-auth-plugin" kubectl/client-go '
    "credential plugin instead.\nSee https://cloud.google.com/blog/products/containers-kubernetes/"
    "kubectl-auth-changes-in-gke for further details",
    "azure": "The azure auth plugin has been removed.\nPlease use the https://github.com/Azure/kubelogin "
    "kubectl/client-go credential plugin instead.\nSee https://kubernetes.io/docs/reference/"
    "access-authn-authz/authentication/#client-go-credential-plugins for further details",
}


@dataclass(frozen=True)
class _Loaded(kubeconfig.Selected):
    """The selection plus what :func:`_upstream` needs to build credentials."""

    user_source: str = ""  # the kubeconfig file defining the user (OIDC writes tokens back there)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # exec plugins inherit it
    in_cluster: bool = False
    notes: tuple[str, ...] = ()  # warnings found while loading


def _select_kubeconfig(flags: Flags, env: Mapping[str, str], base: str) -> kubeconfig.Selected:
    paths, explicit = kubeconfig.kubeconfig_paths(flags.kubeconfig or None, env, env.get("HOME"))
    configs = []
    for path in paths:
        full = os.path.join(base, os.path.expanduser(path))
        if not explicit and not os.path.exists(full):
            continue  # kubectl skips missing KUBECONFIG entries and a missing ~/.kube/config
        text = _read(full, "kubeconfig").decode("utf-8", "replace")
        configs.append(kubeconfig.parse(text, full))
    merged = kubeconfig.merge(configs)

    def absolute(p: str) -> str:
        return os.path.join(base, os.path.expanduser(p)) if p else ""

    overrides = kubeconfig.Overrides(
        context=flags.context,
        cluster=flags.cluster,
        user=flags.user,
        server=flags.server,
        token=flags.token,
        certificate_authority=absolute(flags.certificate_authority),
        client_certificate=absolute(flags.client_certificate),
        client_key=absolute(flags.client_key),
        insecure_skip_tls_verify=flags.insecure_skip_tls_verify,
        tls_server_name=flags.tls_server_name,
        impersonate=flags.as_user,
        impersonate_uid=flags.as_uid,
        impersonate_groups=tuple(flags.as_group),
    )
    empty = not (merged.clusters or merged.users or merged.contexts or merged.current_context)
    if empty and not flags.server:
        # clientcmd's DeferredLoadingClientConfig: an empty kubeconfig falls back to the
        # in-cluster configuration when it is possible.
        sa_dir = env.get(_SA_DIR_ENV) or incluster.SERVICE_ACCOUNT_DIR
        if incluster.possible(env, sa_dir):
            found = incluster.load(env, sa_dir, overrides)
            return _Loaded(**_fields(found.selected), environ=env, in_cluster=True, notes=found.warnings)
    try:
        selected = kubeconfig.select(merged, overrides)
    except ConfigError as exc:
        if not configs and not flags.server:
            raise ConfigError(
                f"{exc}. Point kproxy at a cluster with --kubeconfig, KUBECONFIG or --server, "
                "or try the built-in demo cluster: kproxy --demo"
            ) from None
        raise
    source = merged.sources.get(f"users[{selected.user_name}]", "") if selected.user_name else ""
    return _Loaded(**_fields(selected), user_source=source, environ=env)


def _fields(selected: kubeconfig.Selected) -> dict[str, Any]:
    return {f.name: getattr(selected, f.name) for f in fields(kubeconfig.Selected)}


def _egress(
    flags: Flags, cluster: kubeconfig.Cluster, env: Mapping[str, str], base: str, warnings: list[str]
) -> Egress:
    """The proxy settings by precedence (--http-proxy-config > proxy-url > environment)
    and the extra CAs (--custom-ca-trust-certificates, then trustedCa)."""
    now = datetime.now(UTC)
    bundles = []
    if flags.custom_ca_trust_certificates:
        path = os.path.join(base, os.path.expanduser(flags.custom_ca_trust_certificates))
        bundles.append(parse_ca_file(_read(path, "--custom-ca-trust-certificates file"), path, now=now))
    from_file: EgressConfig | None = None
    if flags.http_proxy_config:
        path = os.path.join(base, os.path.expanduser(flags.http_proxy_config))
        text = _read(path, "--http-proxy-config file").decode("utf-8", "replace")
        from_file, trusted_ca = EgressConfig.from_http_proxy_config(text, path)
        if trusted_ca is not None:
            bundles.append(parse_pem(trusted_ca, f"{path} trustedCa", now=now))
        source = f"--http-proxy-config {path} (the kubeconfig proxy-url and the environment are not used)"
    elif cluster.proxy_url:
        source = "the kubeconfig cluster's proxy-url (the environment is not used)"
    else:
        source = "the environment"
    config = select(http_proxy_config=from_file, proxy_url=cluster.proxy_url, environ=env)
    bundle = merge(*bundles)
    warnings.extend(bundle.warnings)
    if config.http is not None or config.https is not None or config.proxy_url is not None:
        warnings.extend(config.warnings)  # quiet unless a proxy is configured at all
    return Egress(config, source, bundle)


def _origins(bundle: TrustBundle) -> str:
    return ", ".join(dict.fromkeys(o.rpartition(" block ")[0] for o in bundle.origins))


def _upstream(flags: Flags, selected: kubeconfig.Selected, warnings: list[str], egress: Egress) -> Upstream:
    cluster, user = selected.cluster, selected.user
    loaded = selected if isinstance(selected, _Loaded) else _Loaded(**_fields(selected))
    warnings.extend(loaded.notes)
    url = urlsplit(cluster.server)
    scheme = url.scheme.lower()
    host = url.hostname or ""
    try:
        port = url.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"server {cluster.server!r}: invalid port") from None
    netloc = url.netloc.rpartition("@")[2]
    server_path = url.path
    if server_path not in ("", "/") and not flags.append_server_path:
        warnings.append(
            f"Your kube context contains a server path {server_path}, "
            "use --append-server-path to automatically append the path to each request"
        )
    cluster_field = f"clusters[{selected.cluster_name}].cluster" if selected.cluster_name else "cluster"
    user_field = f"users[{selected.user_name}].user" if selected.user_name else "user"
    if loaded.in_cluster:
        cluster_field, user_field = "in-cluster configuration", "in-cluster service account"
    user_where = f"{loaded.user_source}: {user_field}" if loaded.user_source else user_field

    # -- TLS: the CA, and a client certificate that is fixed or rotates on disk ------------
    ssl_context = None
    tls: credentials.TLSSource | None = None
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    ca_field = ""
    build_tls: Callable[[bytes | None, bytes | None], ssl.SSLContext] | None = None
    if scheme == "https":
        if cluster.certificate_authority_data is not None:
            ca_pem = cluster.certificate_authority_data
            ca_field = f"{cluster_field}.certificate-authority-data"
        elif cluster.certificate_authority:
            ca_pem = _read(cluster.certificate_authority, "certificate-authority file")
            ca_field = f"{cluster_field}.certificate-authority ({cluster.certificate_authority})"
        else:
            ca_field = ""
        cert_pem, cert_field = _pem_source(
            user.client_certificate_data, user.client_certificate, f"{user_field}.client-certificate"
        )
        key_pem, key_field = _pem_source(user.client_key_data, user.client_key, f"{user_field}.client-key")

        def build(cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
            return credentials.tls_context(
                ca_pem=ca_pem,
                ca_field=ca_field,
                insecure=cluster.insecure_skip_tls_verify,
                cert_pem=cert,
                key_pem=key,
                cert_field=cert_field,
                key_field=key_field,
                extra_ca=egress.trust.pem,
            )

        build_tls = build
        ssl_context = build(cert_pem, key_pem)
        cert_path = user.client_certificate if user.client_certificate_data is None else None
        key_path = user.client_key if user.client_key_data is None else None
        if cert_pem is not None and key_pem is not None and (cert_path or key_path):
            # Files replaced on disk are picked up for new connections (client-go's cert rotation).
            tls = credentials.CertFiles(
                build,
                (cert_path, cert_pem),
                (key_path, key_pem),
                ssl_context,
                f"{user_field}.client-certificate ({cert_path or key_path})",
            )

    # -- Authorization: client-go's precedence ---------------------------------------------
    # An auth-provider wraps the transport outermost and wins; a token, token file, basic
    # auth or client certificate each make client-go skip the exec plugin.
    auth_header = b""
    auth: credentials.AuthSource | None = None
    if user.auth_provider is not None:
        provider = user.auth_provider
        name = provider.get("name")
        if name in _REMOVED_PROVIDERS:
            raise ConfigError(_REMOVED_PROVIDERS[str(name)])
        if name != "oidc":
            raise ConfigError(
                f'{user_where}.auth-provider: no Auth Provider found for name "{name}"; '
                "kproxy supports oidc (and exec credential plugins)"
            )
        config = provider.get("config") or {}
        idp_ca: bytes | None = None
        if config.get("idp-certificate-authority-data"):
            try:
                idp_ca = base64.b64decode(str(config["idp-certificate-authority-data"]), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{user_where}.auth-provider.config.idp-certificate-authority-data: is not valid base64"
                ) from None
        elif config.get("idp-certificate-authority"):
            idp_ca = _read(str(config["idp-certificate-authority"]), "idp-certificate-authority file")
        auth = oidc.OIDCProvider(
            config,
            where=f"{user_where}.auth-provider",
            ca_pem=idp_ca,
            persist_to=(loaded.user_source, selected.user_name) if loaded.user_source else None,
        )
    elif user.token_file:
        # clientcmd reads the file once to start; client-go then re-reads it every minute.
        what = f"{user_field}.tokenFile ({user.token_file})"
        if loaded.in_cluster:
            what = f"in-cluster service account token ({user.token_file})"
        token = _read(user.token_file, f"{user_field}.tokenFile").decode("utf-8", "replace").strip()
        if not token:
            raise ConfigError(f"{what}: read empty token from file")
        try:
            auth = credentials.TokenFile(user.token_file, token, what)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    elif user.token or user.username or user.password:
        auth_header = credentials.auth_header(user.token, user.username, user.password)
    elif user.exec is not None and cert_pem is None:
        exec_config = exec_credential.parse_config(user.exec, selected.user_name or "user", f"{user_where}.exec")
        try:
            terminal = os.isatty(0)
        except (OSError, ValueError):
            terminal = False
        interactive = exec_credential.is_interactive(exec_config.interactive_mode, terminal, f"{user_where}.exec")
        cluster_info = exec_credential.ClusterInfo(
            server=cluster.server,
            tls_server_name=cluster.tls_server_name,
            insecure_skip_tls_verify=cluster.insecure_skip_tls_verify,
            certificate_authority_data=ca_pem,
            proxy_url=cluster.proxy_url,
            disable_compression=cluster.disable_compression,
            config=cluster.extensions.get(exec_credential.EXEC_EXTENSION),
        )
        timeout = exec_plugin.DEFAULT_TIMEOUT
        if raw := loaded.environ.get(_EXEC_TIMEOUT_ENV, "").strip():
            try:
                timeout = float(raw)
                if not 0 < timeout < 1e9:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{_EXEC_TIMEOUT_ENV}={raw!r}: give a number of seconds, e.g. 120") from None
        plugin = exec_plugin.ExecPlugin(
            exec_config,
            environ=loaded.environ,
            interactive=interactive,
            cluster=cluster_info,
            timeout=timeout,
            tls_for=build_tls,
        )
        auth = plugin
        if build_tls is not None:
            tls = plugin
    # -- Egress: decided once, the server URL is fixed -------------------------------------
    try:
        decision = egress.config.decide(cluster.server)
    except ValueError as exc:
        raise ConfigError(f"server {cluster.server!r}: {exc}") from None
    if decision.error:
        raise ConfigError(f"{decision.rule}; the API server {scheme}://{netloc} cannot be reached from here")
    extra = (
        f" and {len(egress.trust.certificates)} custom CA(s) from {_origins(egress.trust)}"
        if egress.trust.certificates
        else ""
    )
    proxy = None
    if decision.proxy is not None:
        proxy_tls = credentials.proxy_tls_context(egress.trust.pem) if decision.proxy.scheme == "https" else None
        proxy = ProxyRoute.from_url(decision.proxy, decision.source, proxy_tls)
    trusted = (
        "nothing (insecure-skip-tls-verify)"
        if cluster.insecure_skip_tls_verify
        else (ca_field or "the system trust store") + extra
    )
    return Upstream(
        scheme=scheme,
        host=host,
        port=port,
        server_path=server_path,
        display=f"{scheme}://{netloc}",
        host_header=netloc.encode("idna") if not netloc.isascii() else netloc.encode(),
        ssl_context=ssl_context,
        server_hostname=cluster.tls_server_name or host,
        connect_timeout=flags.connect_timeout,
        keepalive=flags.keepalive,
        append_server_path=flags.append_server_path,
        auth_header=auth_header,
        impersonation_headers=credentials.impersonation_headers(
            user.impersonate, user.impersonate_uid, user.impersonate_groups, user.impersonate_extra
        ),
        user_agent_header=f"User-Agent: kproxy/{__version__} ({os.uname().sysname.lower()}/{_arch()})\r\n".encode(),
        auth=auth,
        tls=tls,
        proxy=proxy,
        egress=decision,
        trusted=trusted if scheme == "https" else "",
        proxy_trusted="the system trust store" + extra,
    )


def _pem_source(data: bytes | None, path: str | None, field_name: str) -> tuple[bytes | None, str]:
    if data is not None:
        return data, f"{field_name}-data"
    if path:
        return _read(path, f"{field_name} file"), f"{field_name} ({path})"
    return None, field_name


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
