"""The cluster and user kubectl would talk to and as whom: a kubeconfig plus kubectl's flags.

``select(config, Overrides(...))`` → ``Selected``: the context, cluster and user with
kubectl's global flags applied (client-go's client_config.go ``getContext``/
``getCluster``/``getAuthInfo``), checked as validation.go ``ConfirmUsable`` checks them,
and the server URL normalised as ``rest.DefaultServerURL`` sees it.

Every bad input raises ``ConfigError`` with one line naming where the value came from (the
file and field path of the selected entry, ``--flag``, or "command line") and what is
wrong. Messages name fields, never the values of tokens, passwords or keys.

Where kproxy knowingly differs from kubectl (each is marked "Deviation" below): no server
is an error, not a silent http://localhost:8080; a context naming a missing cluster or
user is an error; --token drops the kubeconfig's tokenFile; a server URL with user info is
refused. As in kubectl, a bare ``host:port`` server means plain http, and over plain http
no credentials or TLS settings are used (only impersonation).

Pure: the configs come in parsed and merged, the flags as ``Overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NoReturn
from urllib.parse import urlsplit

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig.model import Cluster, Context, KubeConfig, User

__all__ = ["Overrides", "Selected", "select"]


@dataclass(frozen=True)
class Overrides:
    """kubectl's global flags; "", None or () means not given. Paths are already absolute."""

    context: str = ""
    cluster: str = ""
    user: str = ""
    server: str = ""
    token: str = field(default="", repr=False)
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    # False acts like None: client-go cannot tell an explicit false from unset.
    insecure_skip_tls_verify: bool | None = None
    tls_server_name: str = ""
    impersonate: str = ""
    impersonate_uid: str = ""
    impersonate_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selected:
    context_name: str
    cluster_name: str
    user_name: str
    namespace: str
    cluster: Cluster
    user: User


def select(config: KubeConfig, overrides: Overrides) -> Selected:
    """The cluster and user kubectl would use, with its global flags applied."""
    o = overrides
    # getContextName: --context, else current-context; either way it must exist
    # (getContext: 'context "x" does not exist'; ConfirmUsable: errContextNotFound).
    ctx_name = o.context or config.current_context
    if ctx_name and ctx_name not in config.contexts:
        where = f"{_origin(config, 'current-context')}: current-context"
        raise ConfigError(
            f'{"--context" if o.context else where}: context "{ctx_name}" does not '
            f"exist; {_available(config, 'contexts')}"
        )
    ctx = config.contexts.get(ctx_name, Context())
    cluster_name, user_name = o.cluster or ctx.cluster, o.user or ctx.user
    _must_exist(config, "clusters", cluster_name, o.cluster and "--cluster", ctx_name)
    _must_exist(config, "users", user_name, o.user and "--user", ctx_name)
    cluster = _apply_cluster(config.clusters.get(cluster_name, Cluster()), o)
    user = _apply_user(config.users.get(user_name, User()), o)
    cwhere, uwhere = _where(config, "clusters", cluster_name), _where(config, "users", user_name)
    if not cluster.server:
        raise ConfigError(_no_server(config, ctx_name, cluster_name, cwhere))
    server, tls = _server_url(cluster.server, "--server" if o.server else f"{cwhere}.server")
    cluster = replace(cluster, server=server)
    _validate(cluster, user, o, cwhere, uwhere)
    if not tls:
        # ClientConfig: "only try to read the auth information if we are secure": over plain
        # http neither credentials nor TLS settings are used; impersonation is set before that.
        cluster = Cluster(
            server=server,
            proxy_url=cluster.proxy_url,
            disable_compression=cluster.disable_compression,
            extensions=cluster.extensions,
        )
        user = User(
            impersonate=user.impersonate,
            impersonate_uid=user.impersonate_uid,
            impersonate_groups=user.impersonate_groups,
            impersonate_extra=user.impersonate_extra,
        )
    elif cluster.insecure_skip_tls_verify and (cluster.certificate_authority or cluster.certificate_authority_data):
        # transport.TLSConfigFor: "specifying a root certificates file with the insecure flag
        # is not allowed".
        if o.insecure_skip_tls_verify and o.certificate_authority:
            raise ConfigError(
                "--insecure-skip-tls-verify and --certificate-authority cannot be "
                "used together: a CA is only used when verifying; drop one"
            )
        raise ConfigError(
            f"{cwhere}: insecure-skip-tls-verify is true and "
            "certificate-authority(-data) is set: a CA is only used when verifying; "
            "remove one of them"
        )
    # Namespace(): an empty namespace means "default".
    return Selected(ctx_name, cluster_name, user_name, ctx.namespace or "default", cluster, user)


def _origin(config: KubeConfig, key: str) -> str:
    return config.sources.get(key, "kubeconfig")


def _available(config: KubeConfig, kind: str) -> str:
    names: Mapping[str, object] = getattr(config, kind)
    return f"available {kind}: {', '.join(sorted(names)) or 'none'}"


def _where(config: KubeConfig, kind: str, name: str) -> str:
    """The field path prefix for messages about the selected cluster or user."""
    if not name:
        return "command line"  # nothing came from a kubeconfig: the values are flags
    return f"{_origin(config, f'{kind}[{name}]')}: {kind}[{name}].{kind[:-1]}"


def _must_exist(config: KubeConfig, kind: str, name: str, flag: str, ctx_name: str) -> None:
    if not name or name in getattr(config, kind):
        return
    noun = kind[:-1]
    if flag:  # getCluster/getAuthInfo: a name given on the command line must exist
        raise ConfigError(f'{flag}: {noun} "{name}" does not exist; {_available(config, kind)}')
    # Deviation: client-go tolerates a context naming a missing cluster or user (and then
    # talks to localhost:8080, or without credentials); kproxy reports the dangling name.
    raise ConfigError(
        f"{_origin(config, f'contexts[{ctx_name}]')}: contexts[{ctx_name}].context."
        f'{noun}: {noun} "{name}" does not exist; {_available(config, kind)}'
    )


def _apply_cluster(c: Cluster, o: Overrides) -> Cluster:
    # getCluster: non-empty override fields overwrite (mergo WithOverride); false cannot.
    insecure = c.insecure_skip_tls_verify or bool(o.insecure_skip_tls_verify)
    c = replace(c, server=o.server or c.server, insecure_skip_tls_verify=insecure)
    if o.insecure_skip_tls_verify or o.certificate_authority:
        # "An override of --insecure-skip-tls-verify=true and no accompanying CA/CA data should
        # clear already-set CA/CA data"; "an override of --certificate-authority should also
        # override TLS skip settings and CA data".
        c = replace(
            c,
            insecure_skip_tls_verify=bool(o.insecure_skip_tls_verify),
            certificate_authority=o.certificate_authority or None,
            certificate_authority_data=None,
        )
    if o.tls_server_name or o.server:
        # "setting a --server will effectively clear the KUBECONFIG value of tls-server-name".
        c = replace(c, tls_server_name=o.tls_server_name)
    return c


def _apply_user(u: User, o: Overrides) -> User:
    if o.token:
        # Deviation: client-go keeps the kubeconfig's tokenFile, and a readable tokenFile then
        # beats --token on every request (transport.NewCachedFileTokenSource). The flag wins here.
        u = replace(u, token=o.token, token_file=None)
    if o.client_certificate:  # getAuthInfo: a cert/key override also replaces the *-data
        u = replace(u, client_certificate=o.client_certificate, client_certificate_data=None)
    if o.client_key:
        u = replace(u, client_key=o.client_key, client_key_data=None)
    # Each impersonation flag replaces only its own field (mergo WithOverride, field by field).
    return replace(
        u,
        impersonate=o.impersonate or u.impersonate,
        impersonate_uid=o.impersonate_uid or u.impersonate_uid,
        impersonate_groups=o.impersonate_groups or u.impersonate_groups,
    )


def _no_server(config: KubeConfig, ctx_name: str, cluster_name: str, cwhere: str) -> str:
    # Deviation: kubectl falls back to ClusterDefaults, http://localhost:8080, which can be
    # the proxy itself. kproxy asks for a server instead.
    if cluster_name:
        return f"{cwhere}.server: is empty; set the API server URL there or pass --server"
    if ctx_name:
        origin = _origin(config, f"contexts[{ctx_name}]")
        return (
            f"{origin}: contexts[{ctx_name}].context.cluster: "
            "is empty; name a cluster there or pass --cluster or --server"
        )
    if config.contexts or config.clusters:
        return (
            "no Kubernetes API server configured: no current-context is set and no --context "
            f"or --server given; {_available(config, 'contexts')}"
        )
    return "no Kubernetes API server configured: no kubeconfig found and no --server given"


def _server_url(server: str, where: str) -> tuple[str, bool]:
    """(normalised server URL, uses TLS), as rest.DefaultServerURL sees it from clientcmd."""
    # Deviation: Go would send user info as basic auth. Checked first: never echo a password.
    if "@" in server.split("://", 1)[-1].split("/", 1)[0]:
        raise ConfigError(f"{where}: the server URL must not contain user info; use a token or a client certificate")
    try:
        parts = urlsplit(server)
        if not parts.scheme or not parts.netloc:
            # A bare host:port gets a scheme. clientcmd asks IsConfigTransportTLS before any CA
            # or client cert is merged in, so defaultTLS is false: kubectl uses plain http.
            parts = urlsplit("http://" + server)
            if parts.path not in ("", "/"):
                raise ValueError("a path needs a scheme")
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as exc:
        raise ConfigError(f'{where}: "{server}" is not a URL ({exc}); use https://host:port') from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f'{where}: scheme "{parts.scheme}" is not supported; use https://host:port')
    if not parts.hostname:
        raise ConfigError(f'{where}: "{server}" has no host; use https://host:port')
    # ClientConfig drops the query and fragment (when there is a path; always, here).
    return f"{scheme}://{parts.netloc}{parts.path}", scheme == "https"


def _validate(c: Cluster, u: User, o: Overrides, cwhere: str, uwhere: str) -> None:
    """validation.go validateClusterInfo and validateAuthInfo, for the selected entries."""

    def fail(where: str, what: str) -> NoReturn:
        raise ConfigError(f"{where}: {what}")

    if c.certificate_authority and c.certificate_authority_data:
        fail(cwhere, "certificate-authority and certificate-authority-data are both set; keep one")
    if c.proxy_url:
        try:  # parseProxyURL. Never echo the URL: it may carry a password.
            scheme = urlsplit(c.proxy_url).scheme
        except ValueError:
            scheme = "?"
        if scheme not in ("http", "https", "socks5"):
            fail(f"{cwhere}.proxy-url", f'unsupported scheme "{scheme}"; must be http, https or socks5')
    if u.client_certificate or u.client_certificate_data:
        if u.client_certificate and u.client_certificate_data:
            fail(uwhere, "client-certificate and client-certificate-data are both set; keep one")
        if u.client_key and u.client_key_data:
            fail(uwhere, "client-key and client-key-data are both set; keep one")
        if not (u.client_key or u.client_key_data):
            fail(uwhere, "a client certificate needs client-key or client-key-data (or --client-key)")
    if u.token and (u.username or u.password):
        fail(
            uwhere,
            f"more than one authentication method ({'--token' if o.token else 'token'} "
            "and username/password); use only one",
        )
    if u.exec is not None and u.auth_provider is not None:
        fail(uwhere, "exec and auth-provider cannot both be set; keep one")
    if (u.impersonate_uid or u.impersonate_groups or u.impersonate_extra) and not u.impersonate:
        fail(
            uwhere, "as-uid, as-groups or as-user-extra (or --as-uid/--as-group) need a user to impersonate (as / --as)"
        )
