"""Every setting, once: each :class:`Flags` field carries its default and its command-line flag.

In: nothing; this is the table. Out: :class:`Flags` (public as ``kproxy.Flags``), the frozen
dataclass an embedder fills (``kproxy.Flags(port=0, kubeconfig=...)``) and the CLI parses
argv into; and :data:`FLAG_TABLE`, the same fields as command-line flags (kubectl's name,
short form, help text, how the value is spelled, the default), read by
:mod:`kproxy.cli.arguments` to build the parser and its ``--help``.

Order: kubectl proxy's own flags, then kubectl's global flags that shape the upstream,
then kproxy's own. Names, short forms, defaults and help texts are kubectl's where kubectl
has the flag; help texts of kproxy's own flags start with ``kproxy:``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal, TypeVar

from kproxy.policy.filters import (
    DEFAULT_ACCEPT_HOSTS,
    DEFAULT_ACCEPT_PATHS,
    DEFAULT_REJECT_METHODS,
    DEFAULT_REJECT_PATHS,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_READ_HEADER_TIMEOUT",
    "FLAG_TABLE",
    "Flag",
    "FlagKind",
    "Flags",
]

DEFAULT_KEEPALIVE = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_HEADER_TIMEOUT = 60.0  # Go's http.Server has none by default; a front door needs one
DEFAULT_IDLE_TIMEOUT = 300.0

# How a value is spelled on the command line: a string, a decimal integer, Go's
# strconv.ParseBool (a bare --flag is true), Go's time.ParseDuration (seconds in Flags),
# or a flag that may be repeated (a tuple in Flags).
FlagKind = Literal["str", "int", "bool", "duration", "list"]

T = TypeVar("T")
_METADATA_KEY = "kproxy.flag"


@dataclass(frozen=True)
class Flag:
    """One command-line flag: the metadata of a :class:`Flags` field, plus the field's name
    (``dest``) and default once :data:`FLAG_TABLE` has read them."""

    name: str  # kubectl's spelling, without the dashes
    short: str  # one letter, "" without a short form
    help: str
    kind: FlagKind = "str"
    dest: str = ""  # the Flags field
    default: object = None


def _flag(default: T, help: str, *, short: str = "", kind: FlagKind = "str", name: str = "", secret: bool = False) -> T:
    """A :class:`Flags` field: its default, and its flag (named after the field unless
    ``name`` says otherwise). ``secret`` keeps the value out of ``repr``."""
    return field(default=default, repr=not secret, metadata={_METADATA_KEY: Flag(name, short, help, kind)})


@dataclass(frozen=True)
class Flags:
    """Every setting, named like kubectl's flags (``-`` becomes ``_``; ``--as`` is ``as_user``).

    Defaults are kubectl's, except ``keepalive`` (see the README's differences table).
    Durations are seconds.
    """

    port: int = _flag(
        8001, "The port on which to run the proxy. Set to 0 to pick a random port.", short="p", kind="int"
    )
    address: str = _flag("127.0.0.1", "The IP address on which to serve on.")
    unix_socket: str = _flag("", "Unix socket on which to run the proxy.", short="u")
    www: str = _flag("", "Also serve static files from the given directory under the specified prefix.", short="w")
    www_prefix: str = _flag(
        "/static/", "Prefix to serve static files under, if static file directory is specified.", short="P"
    )
    api_prefix: str = _flag("/", "Prefix to serve the proxied API under.")
    accept_hosts: str = _flag(DEFAULT_ACCEPT_HOSTS, "Regular expression for hosts that the proxy should accept.")
    accept_paths: str = _flag(DEFAULT_ACCEPT_PATHS, "Regular expression for paths that the proxy should accept.")
    reject_paths: str = _flag(
        DEFAULT_REJECT_PATHS,
        "Regular expression for paths that the proxy should reject. "
        "Paths specified here will be rejected even accepted by --accept-paths.",
    )
    reject_methods: str = _flag(
        DEFAULT_REJECT_METHODS,
        "Regular expression for HTTP methods that the proxy should reject (example --reject-methods='POST,PUT,PATCH').",
    )
    disable_filter: bool = _flag(
        False,
        "If true, disable request filtering in the proxy. This is dangerous, and can leave you vulnerable "
        "to XSRF attacks, when used with an accessible port.",
        kind="bool",
    )
    keepalive: float = _flag(
        DEFAULT_KEEPALIVE,
        "keepalive specifies the keep-alive period for an active network connection. "
        "Set to 0 to disable keepalive. (default 30s)",
        kind="duration",
    )
    append_server_path: bool = _flag(
        False,
        "If true, enables automatic path appending of the kube context server path to each request.",
        kind="bool",
    )
    kubeconfig: str = _flag("", "Path to the kubeconfig file to use for CLI requests.")
    context: str = _flag("", "The name of the kubeconfig context to use")
    cluster: str = _flag("", "The name of the kubeconfig cluster to use")
    user: str = _flag("", "The name of the kubeconfig user to use")
    server: str = _flag("", "The address and port of the Kubernetes API server", short="s")
    token: str = _flag("", "Bearer token for authentication to the API server", secret=True)
    certificate_authority: str = _flag("", "Path to a cert file for the certificate authority")
    client_certificate: str = _flag("", "Path to a client certificate file for TLS")
    client_key: str = _flag("", "Path to a client key file for TLS")
    insecure_skip_tls_verify: bool | None = _flag(
        None,
        "If true, the server's certificate will not be checked for validity. "
        "This will make your HTTPS connections insecure",
        kind="bool",
    )
    tls_server_name: str = _flag(
        "",
        "Server name to use for server certificate validation. "
        "If it is not provided, the hostname used to contact the server is used",
    )
    as_user: str = _flag(
        "",
        "Username to impersonate for the operation. User could be a regular user or a service account in a namespace.",
        name="as",
    )
    as_group: tuple[str, ...] = _flag(
        (),
        "Group to impersonate for the operation, this flag can be repeated to specify multiple groups.",
        kind="list",
    )
    as_uid: str = _flag("", "UID to impersonate for the operation.")
    connect_timeout: float = _flag(
        DEFAULT_CONNECT_TIMEOUT,
        "kproxy: time allowed for connecting to the API server, TLS handshake included (Go duration).",
        kind="duration",
    )
    read_header_timeout: float = _flag(
        DEFAULT_READ_HEADER_TIMEOUT,
        "kproxy: time allowed for a client to send a request head, from the connection's start for the "
        "first request and from its first byte for later ones; then 408 and close (Go duration; 0 disables). "
        "(default 1m0s)",
        kind="duration",
    )
    idle_timeout: float = _flag(
        DEFAULT_IDLE_TIMEOUT,
        "kproxy: how long a keep-alive client connection may wait for its next request before it is closed "
        "(Go duration; 0 disables). Requests in progress (watches, logs -f, exec) are never cut. (default 5m0s)",
        kind="duration",
    )
    authorized_ip_ranges: str = _flag(
        "",
        "kproxy: comma-separated CIDRs (a bare IP is /32 or /128) of clients allowed to use the proxy; "
        "empty disables the check; 0.0.0.0/32 means only this machine.",
    )
    authorized_ip_ranges_file: str = _flag(
        "",
        "kproxy: file of authorized client CIDRs, one per line, # comments; reloaded on SIGHUP and when it changes.",
    )
    cors_allowed_origins: str = _flag(
        "",
        "kproxy: comma-separated origins (scheme://host[:port]) or anchored RE2 patterns of web pages allowed "
        "to use the proxy from another origin (CORS; kproxy answers their preflights). Pages from other origins "
        "may only GET, HEAD and OPTIONS, and never upgrade.",
    )
    trusted_proxies: str = _flag(
        "",
        "kproxy: CIDRs of front proxies whose X-Forwarded-For names the real client (for --authorized-ip-ranges).",
    )
    http_proxy_config: str = _flag(
        "",
        "kproxy: AKS httpProxyConfig JSON file (httpProxy, httpsProxy, noProxy, trustedCa) for reaching "
        "the API server; wins over the kubeconfig proxy-url and HTTP(S)_PROXY/NO_PROXY.",
    )
    disable_http2: bool = _flag(
        False,
        "kproxy: send watches and followed logs to the API server over HTTP/1.1 too, one connection each, "
        "instead of sharing HTTP/2 connections (also when DISABLE_HTTP2 is set in the environment, as client-go).",
        kind="bool",
    )
    custom_ca_trust_certificates: str = _flag(
        "",
        "kproxy: PEM file of extra CA certificates (blank-line separated, as AKS takes them) "
        "trusted for the API server and https:// proxies.",
    )
    tls_cert_file: str = _flag(
        "",
        "kproxy: serve HTTPS on --address/--port with this PEM certificate (chain), with --tls-private-key-file; "
        "both are reloaded when they change and on SIGHUP.",
    )
    tls_private_key_file: str = _flag("", "kproxy: the PEM private key of --tls-cert-file.")
    tls_min_version: str = _flag(
        "VersionTLS12", "kproxy: minimum TLS version clients may use, by Go's name: VersionTLS12 or VersionTLS13."
    )
    tls_cipher_suites: tuple[str, ...] = _flag(
        (),
        "kproxy: comma-separated TLS 1.2 cipher suites clients may use, by Go's names "
        "(e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); default: OpenSSL's secure list. TLS 1.3's are always on.",
        kind="list",
    )
    client_ca_file: str = _flag(
        "",
        "kproxy: PEM CA bundle that client certificates must chain to; clients without a valid one get 401. "
        "Needs --tls-cert-file; reloaded like it.",
    )
    client_identity: str = _flag(
        "proxy",
        "kproxy: what the API server sees: proxy (kproxy's credential, as kubectl), impersonate (kproxy's credential "
        "impersonating the client certificate's CN and O; needs --client-ca-file) or passthrough "
        "(the client's own credential, or none).",
    )
    metrics_address: str = _flag(
        "",
        "kproxy: HOST:PORT for an admin listener (plain HTTP, off by default) serving /metrics (Prometheus), "
        "/livez and /readyz; subject to --authorized-ip-ranges.",
    )
    access_log: str = _flag(
        "",
        "kproxy: write an access log line per request, as text (what -v=2 logs) or json (one object per line, "
        "with the Audit-ID the API server logs too).",
    )
    access_log_file: str = _flag("", "kproxy: file the access log is appended to (default stderr); reopened on SIGHUP.")


def _table() -> tuple[Flag, ...]:
    table = []
    for f in fields(Flags):
        spec: Flag = f.metadata[_METADATA_KEY]
        table.append(replace(spec, name=spec.name or f.name.replace("_", "-"), dest=f.name, default=f.default))
    return tuple(table)


# The flags in field order: what the CLI parses and --help lists.
FLAG_TABLE: tuple[Flag, ...] = _table()
