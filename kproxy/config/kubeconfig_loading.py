"""Which cluster and user: kubeconfig files found, read, merged and overridden by flags, as kubectl does.

In: :class:`~kproxy.config.flags.Flags` (``--kubeconfig``, ``--context``, ``--server``,
``--token``, ``--as``...), the environment (``KUBECONFIG``, ``HOME``, and for in-cluster
configuration ``KUBERNETES_SERVICE_HOST``/``PORT``) and the working directory. Out:
:class:`Loaded`, the :class:`~kproxy.policy.kubeconfig.Selected` cluster and user plus what
building credentials needs (the file defining the user, the environment for exec plugins)
and how messages name their fields. The rules themselves (precedence, merging, relative
paths) are :mod:`kproxy.policy.kubeconfig`'s; this module does the reading.

``KPROXY_SERVICE_ACCOUNT_DIR`` replaces ``/var/run/secrets/kubernetes.io/serviceaccount``
for in-cluster configuration (tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kproxy.config import incluster
from kproxy.config.files import read_file, resolve
from kproxy.config.flags import Flags
from kproxy.errors import ConfigError
from kproxy.policy import kubeconfig

__all__ = ["SERVICE_ACCOUNT_DIR_ENV", "Loaded", "load_kubeconfig"]

SERVICE_ACCOUNT_DIR_ENV = "KPROXY_SERVICE_ACCOUNT_DIR"


@dataclass(frozen=True)
class Loaded(kubeconfig.Selected):
    """The selection plus what building the upstream's credentials needs."""

    user_source: str = ""  # the kubeconfig file defining the user (OIDC writes tokens back there)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)  # exec plugins inherit it
    in_cluster: bool = False
    notes: tuple[str, ...] = ()  # warnings found while loading
    files: tuple[str, ...] = ()  # the kubeconfig files kubectl would read (absolute; some may be missing)

    @property
    def cluster_field(self) -> str:
        """How messages name the cluster's settings: ``clusters[NAME].cluster``."""
        if self.in_cluster:
            return "in-cluster configuration"
        return f"clusters[{self.cluster_name}].cluster" if self.cluster_name else "cluster"

    @property
    def user_field(self) -> str:
        """How messages name the user's settings: ``users[NAME].user``."""
        if self.in_cluster:
            return "in-cluster service account"
        return f"users[{self.user_name}].user" if self.user_name else "user"

    @property
    def user_where(self) -> str:
        """:attr:`user_field`, after the kubeconfig file defining it when known."""
        return f"{self.user_source}: {self.user_field}" if self.user_source else self.user_field


def load_kubeconfig(flags: Flags, env: Mapping[str, str], base: str) -> Loaded:
    """kubectl's choice of cluster and user. Raises :class:`ConfigError`."""
    paths, explicit = kubeconfig.kubeconfig_paths(flags.kubeconfig or None, env, env.get("HOME"))
    files = tuple(resolve(base, path) for path in paths)
    configs = []
    for full in files:
        if not explicit and not os.path.exists(full):
            continue  # kubectl skips missing KUBECONFIG entries and a missing ~/.kube/config
        text = read_file(full, "kubeconfig").decode("utf-8", "replace")
        configs.append(kubeconfig.parse(text, full))
    merged = kubeconfig.merge(configs)
    overrides = _overrides(flags, base)
    empty = not (merged.clusters or merged.users or merged.contexts or merged.current_context)
    if empty and not flags.server:
        # clientcmd's DeferredLoadingClientConfig: an empty kubeconfig falls back to the
        # in-cluster configuration when it is possible.
        sa_dir = env.get(SERVICE_ACCOUNT_DIR_ENV) or incluster.SERVICE_ACCOUNT_DIR
        if incluster.possible(env, sa_dir):
            found = incluster.load(env, sa_dir, overrides)
            return Loaded(**_fields(found.selected), environ=env, in_cluster=True, notes=found.warnings, files=files)
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
    return Loaded(**_fields(selected), user_source=source, environ=env, files=files)


def _overrides(flags: Flags, base: str) -> kubeconfig.Overrides:
    """kubectl's global flags, which replace the kubeconfig's fields one by one."""

    def absolute(p: str) -> str:
        return resolve(base, p) if p else ""

    return kubeconfig.Overrides(
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


def _fields(selected: kubeconfig.Selected) -> dict[str, Any]:
    return {f.name: getattr(selected, f.name) for f in fields(kubeconfig.Selected)}
