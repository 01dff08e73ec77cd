"""Who kproxy is to the API server: the user's credential, chosen by client-go's precedence.

In: the :class:`~kproxy.config.kubeconfig_loading.Loaded` user (and cluster, for an exec
plugin's cluster info) and the :class:`~kproxy.config.upstream_tls.UpstreamTLS` already
built. Out: :class:`UserAuth`: a fixed ``Authorization`` line, or a source that keeps it
fresh while kproxy runs (and, for an exec plugin over TLS, the client certificate too).
One function per kind, each usable alone:

* :func:`auth_provider`: ``auth-provider`` (``oidc``), a source refreshing the id-token;
* :func:`token_file`: ``tokenFile`` or the in-cluster token, a source re-reading the file;
* :func:`static_auth`: ``token`` (``--token``) or ``username``/``password``, a fixed line;
* :func:`exec_auth`: ``exec``, a plugin source (a token, a client certificate or both).

``KPROXY_EXEC_PLUGIN_TIMEOUT`` (seconds, from the environment kproxy started with) bounds
one run of an exec plugin. Messages name the kubeconfig field, never a credential.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kproxy.config.files import read_file
from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.upstream_tls import BuildContext, UpstreamTLS
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy import kubeconfig

if TYPE_CHECKING:
    # Imported when a kubeconfig uses them: nobody else pays for them at start-up.
    from kproxy.credentials import exec_plugin, oidc

__all__ = [
    "EXEC_TIMEOUT_ENV",
    "UserAuth",
    "auth_provider",
    "exec_auth",
    "exec_timeout",
    "static_auth",
    "token_file",
    "user_auth",
]

EXEC_TIMEOUT_ENV = "KPROXY_EXEC_PLUGIN_TIMEOUT"

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
class UserAuth:
    """The user's credential: none, a fixed header, or sources refreshed while kproxy runs."""

    header: bytes = field(default=b"", repr=False)  # a whole "Authorization: ...\r\n" line
    source: credentials.AuthSource | None = field(default=None, repr=False)
    tls: credentials.TLSSource | None = field(default=None, repr=False)  # an exec plugin's certificate


def user_auth(loaded: Loaded, tls: UpstreamTLS) -> UserAuth:
    """client-go's precedence: an auth-provider wraps the transport outermost and wins; a
    token file, a token, basic auth or a client certificate each make client-go skip the
    exec plugin. Raises ConfigError."""
    user = loaded.user
    if user.auth_provider is not None:
        persist_to = (loaded.user_source, loaded.user_name) if loaded.user_source else None
        return UserAuth(source=auth_provider(user.auth_provider, f"{loaded.user_where}.auth-provider", persist_to))
    if user.token_file:
        return UserAuth(source=token_file(user.token_file, loaded.user_field, in_cluster=loaded.in_cluster))
    if user.token or user.username or user.password:
        return UserAuth(header=static_auth(user))
    if user.exec is not None and not tls.client_certificate:
        plugin = exec_auth(
            user.exec,
            user_name=loaded.user_name or "user",
            where=f"{loaded.user_where}.exec",
            cluster=loaded.cluster,
            ca_pem=tls.ca_pem,
            environ=loaded.environ,
            terminal=_stdin_is_terminal(),
            tls_for=tls.build,
        )
        return UserAuth(source=plugin, tls=plugin if tls.build is not None else None)
    return UserAuth()


def auth_provider(provider: Mapping[str, Any], where: str, persist_to: tuple[str, str] | None) -> oidc.OIDCProvider:
    """``auth-provider``: only ``oidc`` is left in client-go; ``gcp`` and ``azure`` get
    kubectl's removal message. ``where`` names the field (``FILE: users[u].user.auth-provider``);
    ``persist_to`` is (kubeconfig file, user name) for refreshed tokens."""
    name = provider.get("name")
    if name in _REMOVED_PROVIDERS:
        raise ConfigError(_REMOVED_PROVIDERS[str(name)])
    if name != "oidc":
        raise ConfigError(
            f'{where}: no Auth Provider found for name "{name}"; kproxy supports oidc (and exec credential plugins)'
        )
    config = provider.get("config") or {}
    idp_ca: bytes | None = None
    if config.get("idp-certificate-authority-data"):
        try:
            idp_ca = base64.b64decode(str(config["idp-certificate-authority-data"]), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}.config.idp-certificate-authority-data: is not valid base64") from None
    elif config.get("idp-certificate-authority"):
        idp_ca = read_file(str(config["idp-certificate-authority"]), "idp-certificate-authority file")
    from kproxy.credentials import oidc

    return oidc.OIDCProvider(config, where=where, ca_pem=idp_ca, persist_to=persist_to)


def token_file(path: str, user_field: str, *, in_cluster: bool = False) -> credentials.TokenFile:
    """``tokenFile`` (or the in-cluster service account token): clientcmd reads the file
    once to start, and refuses an empty one; client-go then re-reads it every minute."""
    what = f"in-cluster service account token ({path})" if in_cluster else f"{user_field}.tokenFile ({path})"
    token = read_file(path, f"{user_field}.tokenFile").decode("utf-8", "replace").strip()
    if not token:
        raise ConfigError(f"{what}: read empty token from file")
    try:
        return credentials.TokenFile(path, token, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def static_auth(user: kubeconfig.User) -> bytes:
    """``token`` (or ``--token``) as a bearer line, else ``username``/``password`` as basic
    auth; ``b""`` without either."""
    return credentials.auth_header(user.token, user.username, user.password)


def exec_auth(
    raw: Mapping[str, Any],
    *,
    user_name: str,
    where: str,
    cluster: kubeconfig.Cluster,
    ca_pem: bytes | None,
    environ: Mapping[str, str],
    terminal: bool,
    tls_for: BuildContext | None,
) -> exec_plugin.ExecPlugin:
    """``exec``: the plugin, validated now and first run by the first request that needs
    it. ``terminal``: whether kproxy's stdin is one (for ``interactiveMode``); ``tls_for``:
    how its client certificate becomes a context (None over plain HTTP)."""
    from kproxy.policy import exec_credential

    config = exec_credential.parse_config(raw, user_name, where)
    interactive = exec_credential.is_interactive(config.interactive_mode, terminal, where)
    cluster_info = exec_credential.ClusterInfo(
        server=cluster.server,
        tls_server_name=cluster.tls_server_name,
        insecure_skip_tls_verify=cluster.insecure_skip_tls_verify,
        certificate_authority_data=ca_pem,
        proxy_url=cluster.proxy_url,
        disable_compression=cluster.disable_compression,
        config=cluster.extensions.get(exec_credential.EXEC_EXTENSION),
    )
    from kproxy.credentials import exec_plugin

    return exec_plugin.ExecPlugin(
        config,
        environ=environ,
        interactive=interactive,
        cluster=cluster_info,
        timeout=exec_timeout(environ),
        tls_for=tls_for,
    )


def exec_timeout(environ: Mapping[str, str]) -> float:
    """Seconds one plugin run may take: ``KPROXY_EXEC_PLUGIN_TIMEOUT``, or the default."""
    from kproxy.credentials import exec_plugin

    raw = environ.get(EXEC_TIMEOUT_ENV, "").strip()
    if not raw:
        return exec_plugin.DEFAULT_TIMEOUT
    try:
        timeout = float(raw)
    except ValueError:
        timeout = 0.0
    if not 0 < timeout < 1e9:  # also NaN
        raise ConfigError(f"{EXEC_TIMEOUT_ENV}={raw!r}: give a number of seconds, e.g. 120")
    return timeout


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(0)
    except (OSError, ValueError):
        return False
