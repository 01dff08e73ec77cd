"""The one immutable options object, built once from flags, the environment and files.

In: :class:`Flags` (kubectl's flag names, Python values), an environment mapping and a
working directory. Out: :class:`Options`, validated, with the upstream TLS context and
credentials ready. This is the only module that reads the environment, kubeconfig and
PEM files; everything below receives plain values.

Start-up warnings kubectl prints (word for word) are collected in
``Options.warnings`` for the CLI to print; nothing here writes to stderr.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import credentials, kubeconfig
from ._version import __version__
from .errors import ConfigError
from .filters import (
    DEFAULT_ACCEPT_HOSTS,
    DEFAULT_ACCEPT_PATHS,
    DEFAULT_REJECT_METHODS,
    DEFAULT_REJECT_PATHS,
    RequestFilter,
)
from .ranges import AuthorizedRanges, IPNetwork, parse_trusted_proxies
from .routing import Router, normalize_prefix

__all__ = ["Flags", "Listen", "Options", "Upstream"]

DEFAULT_KEEPALIVE = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Flags:
    """Every setting, named like kubectl's flags (``-`` becomes ``_``; ``--as`` is ``as_user``).

    Defaults are kubectl's, except ``keepalive`` (see the README's differences table).
    """

    port: int = 8001
    address: str = "127.0.0.1"
    unix_socket: str = ""
    www: str = ""
    www_prefix: str = "/static/"
    api_prefix: str = "/"
    accept_hosts: str = DEFAULT_ACCEPT_HOSTS
    accept_paths: str = DEFAULT_ACCEPT_PATHS
    reject_paths: str = DEFAULT_REJECT_PATHS
    reject_methods: str = DEFAULT_REJECT_METHODS
    disable_filter: bool = False
    keepalive: float = DEFAULT_KEEPALIVE
    append_server_path: bool = False
    kubeconfig: str = ""
    context: str = ""
    cluster: str = ""
    user: str = ""
    server: str = ""
    token: str = field(default="", repr=False)
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    insecure_skip_tls_verify: bool | None = None
    tls_server_name: str = ""
    as_user: str = ""
    as_group: tuple[str, ...] = ()
    as_uid: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    authorized_ip_ranges: str = ""
    authorized_ip_ranges_file: str = ""
    trusted_proxies: str = ""


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
    auth_header: bytes = field(default=b"", repr=False)
    impersonation_headers: bytes = b""
    user_agent_header: bytes = b""


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
        upstream = _upstream(flags, selected, warnings)

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
            warnings.append(
                "Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious"
            )
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
        notices: list[str] = []
        if ranges.enabled:
            notices.append(ranges.describe())
        if trusted:
            notices.append(
                f"trusting X-Forwarded-For from {len(trusted)} front proxy range(s): "
                + ",".join(str(n) for n in trusted)
            )
        if (
            not listen.unix_socket
            and not _is_loopback(listen.host)
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
        )


def load_ranges_file(path: str) -> AuthorizedRanges:
    """Read an authorized-ranges file (startup and every reload). Raises ConfigError."""
    text = _read(path, "--authorized-ip-ranges-file").decode("utf-8", "replace")
    return AuthorizedRanges.parse_file_text(text, source=path)


def combine_ranges(flag: AuthorizedRanges, from_file: AuthorizedRanges) -> AuthorizedRanges:
    return AuthorizedRanges(flag.networks + from_file.networks)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


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
    try:
        return kubeconfig.select(merged, overrides)
    except ConfigError as exc:
        if not configs and not flags.server:
            raise ConfigError(
                f"{exc}. Point kproxy at a cluster with --kubeconfig, KUBECONFIG or --server, "
                "or try the built-in demo cluster: kproxy --demo"
            ) from None
        raise


def _upstream(flags: Flags, selected: kubeconfig.Selected, warnings: list[str]) -> Upstream:
    cluster, user = selected.cluster, selected.user
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
    ssl_context = None
    if scheme == "https":
        if cluster.certificate_authority_data is not None:
            ca_pem: bytes | None = cluster.certificate_authority_data
            ca_field = f"{cluster_field}.certificate-authority-data"
        elif cluster.certificate_authority:
            ca_pem = _read(cluster.certificate_authority, "certificate-authority file")
            ca_field = f"{cluster_field}.certificate-authority ({cluster.certificate_authority})"
        else:
            ca_pem, ca_field = None, ""
        cert_pem, cert_field = _pem_source(
            user.client_certificate_data, user.client_certificate, f"{user_field}.client-certificate"
        )
        key_pem, key_field = _pem_source(user.client_key_data, user.client_key, f"{user_field}.client-key")
        ssl_context = credentials.tls_context(
            ca_pem=ca_pem,
            ca_field=ca_field,
            insecure=cluster.insecure_skip_tls_verify,
            cert_pem=cert_pem,
            key_pem=key_pem,
            cert_field=cert_field,
            key_field=key_field,
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
        auth_header=credentials.auth_header(user.token, user.username, user.password),
        impersonation_headers=credentials.impersonation_headers(
            user.impersonate, user.impersonate_uid, user.impersonate_groups, user.impersonate_extra
        ),
        user_agent_header=f"User-Agent: kproxy/{__version__} ({os.uname().sysname.lower()}/{_arch()})\r\n".encode(),
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
