"""``--client-identity``: checked against the rest of the configuration before anything starts.

In: :class:`~kproxy.config.flags.Flags`, the :class:`~kproxy.config.serving_tls.ServingTLS`
(or None) and the :class:`~kproxy.config.kubeconfig_loading.Loaded` cluster and user. Out:
the :data:`~kproxy.policy.client_identity.IdentityMode`, the kubeconfig selection the
upstream is built from (in ``passthrough`` mode without the user: kproxy adds no
credential, so none is read, no exec plugin runs and no client certificate is presented),
and a notice line; or a :class:`~kproxy.errors.ConfigError` naming the flags of a
combination that cannot work (``docs/sharing.md`` §5):

* ``impersonate`` without ``--client-ca-file``: nobody to impersonate;
* ``impersonate`` with impersonation of kproxy's own (``--as*``, the kubeconfig's ``as``):
  two answers to "whom does kproxy act as";
* ``impersonate`` with a kubeconfig user that has no credential for an ``https://`` API
  server: it would refuse an anonymous impersonator;
* ``passthrough`` with a credential flag (``--token``, ``--client-certificate``,
  ``--client-key``, ``--as*``): kproxy adds none in that mode.
"""

from __future__ import annotations

from dataclasses import replace

from kproxy.config.flags import Flags
from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.serving_tls import ServingTLS
from kproxy.errors import ConfigError
from kproxy.policy.client_identity import IDENTITY_MODES, IdentityMode
from kproxy.policy.kubeconfig.model import User

__all__ = ["identity_mode", "identity_notice", "upstream_selection"]

_MODES: dict[str, IdentityMode] = {mode: mode for mode in IDENTITY_MODES}


def identity_mode(flags: Flags, serving: ServingTLS | None) -> IdentityMode:
    """``--client-identity``, checked against the flags. Raises ConfigError."""
    known = _MODES.get(flags.client_identity.strip())
    if known is None:
        raise ConfigError(
            f"--client-identity {flags.client_identity!r}: unknown mode; use proxy (the default), "
            "impersonate or passthrough"
        )
    if known == "impersonate" and (serving is None or not serving.client_ca_file):
        raise ConfigError(
            "--client-identity impersonate needs --client-ca-file (with --tls-cert-file and "
            "--tls-private-key-file): the client certificate names the user to impersonate"
        )
    if known == "passthrough":
        for name, given in (
            ("--token", flags.token),
            ("--client-certificate", flags.client_certificate),
            ("--client-key", flags.client_key),
            *_impersonation_flags(flags),
        ):
            if given:
                raise ConfigError(
                    f"{name} cannot be used with --client-identity passthrough: kproxy adds no credential of its "
                    "own in that mode"
                )
    if known == "impersonate":
        for name, given in _impersonation_flags(flags):
            if given:
                raise ConfigError(
                    f"{name} cannot be used with --client-identity impersonate: the client certificate decides "
                    "whom kproxy impersonates"
                )
    return known


def upstream_selection(mode: IdentityMode, loaded: Loaded) -> Loaded:
    """The kubeconfig selection to build the upstream from. Raises ConfigError."""
    user = loaded.user
    if mode == "passthrough":
        return replace(loaded, user=User())
    if mode == "impersonate":
        if user.impersonate:
            raise ConfigError(
                f"{loaded.user_where}: the user impersonates {user.impersonate!r} (as), which --client-identity "
                "impersonate replaces with each client's identity: remove one"
            )
        # Over http:// kubectl sends no credential anyway: what listens there (another
        # proxy that adds its own) decides.
        if not _has_credential(user) and loaded.cluster.server.startswith("https://"):
            raise ConfigError(
                f"--client-identity impersonate: kproxy's kubeconfig user ({loaded.user_where}) has no credential; "
                "the API server lets only an authenticated user impersonate"
            )
    return loaded


def identity_notice(mode: IdentityMode, loaded: Loaded) -> str:
    """One line for the start-up notices ("" in the default mode)."""
    if mode == "impersonate":
        return (
            f"client identity: impersonate (kproxy's user {loaded.user_field} impersonates each client "
            "certificate's CN and O)"
        )
    if mode == "passthrough":
        dropped = f"; the credentials of {loaded.user_field} are not used" if _has_credential(loaded.user) else ""
        return f"client identity: passthrough (kproxy adds no credential: each client's own, or none){dropped}"
    return ""


def _impersonation_flags(flags: Flags) -> tuple[tuple[str, bool], ...]:
    return (("--as", bool(flags.as_user)), ("--as-group", bool(flags.as_group)), ("--as-uid", bool(flags.as_uid)))


def _has_credential(user: User) -> bool:
    return bool(
        user.token
        or user.token_file
        or user.username
        or user.client_certificate
        or user.client_certificate_data
        or user.exec
        or user.auth_provider
    )
