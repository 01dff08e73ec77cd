"""In-cluster configuration: kproxy running in a pod, as client-go's ``rest.InClusterConfig``.

In: the environment mapping (``KUBERNETES_SERVICE_HOST``, ``KUBERNETES_SERVICE_PORT``,
``POD_NAMESPACE``), the service account directory (``/var/run/secrets/kubernetes.io/
serviceaccount``; :mod:`kproxy.config.kubeconfig_loading` lets ``KPROXY_SERVICE_ACCOUNT_DIR`` replace it
for tests), and kubectl's ``--token``/``--certificate-authority`` flags, the only ones
client-go's inClusterClientConfig applies. Out: a :class:`~kproxy.policy.kubeconfig.Selected`
like one read from a kubeconfig: server ``https://HOST:PORT``, the ``token`` file as
``tokenFile`` (re-read as the kubelet rotates it) and ``ca.crt`` as the CA.

Used only when kubectl would: no kubeconfig file contributed anything, no ``--server``,
both variables set and the token file present (``inClusterClientConfig.Possible``).
A CA that does not load is reported and the system roots are used, as client-go does.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from kproxy.policy import kubeconfig
from kproxy.policy.gonet import join_host_port

__all__ = ["SERVICE_ACCOUNT_DIR", "InCluster", "load", "possible"]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class InCluster:
    selected: kubeconfig.Selected
    warnings: tuple[str, ...]


def possible(environ: Mapping[str, str], sa_dir: str) -> bool:
    if not environ.get("KUBERNETES_SERVICE_HOST") or not environ.get("KUBERNETES_SERVICE_PORT"):
        return False
    return os.path.isfile(os.path.join(sa_dir, "token"))


def load(environ: Mapping[str, str], sa_dir: str, overrides: kubeconfig.Overrides) -> InCluster:
    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ["KUBERNETES_SERVICE_PORT"]
    server = "https://" + join_host_port(host, port)  # rest.InClusterConfig: net.JoinHostPort
    warnings: list[str] = []
    ca_file = os.path.join(sa_dir, "ca.crt")
    if overrides.certificate_authority:
        ca: str | None = overrides.certificate_authority
    else:
        ca = ca_file
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            warnings.append(f"Expected to load root CA config from {ca_file}, but got err: {reason}")
            ca = None
    token_file: str | None = os.path.join(sa_dir, "token")
    token = ""
    if overrides.token:
        token, token_file = overrides.token, None
    namespace = environ.get("POD_NAMESPACE", "")
    if not namespace:
        try:
            with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
                namespace = f.read().strip()
        except OSError:
            namespace = ""
    cluster = kubeconfig.Cluster(server=overrides.server or server, certificate_authority=ca)
    # Impersonation flags are applied too (client-go's in-cluster config ignores them;
    # a silently ignored --as would be worse).
    user = kubeconfig.User(
        token=token,
        token_file=token_file,
        impersonate=overrides.impersonate,
        impersonate_uid=overrides.impersonate_uid,
        impersonate_groups=overrides.impersonate_groups,
    )
    selected = kubeconfig.Selected("", "", "", namespace or "default", cluster, user)
    return InCluster(selected, tuple(warnings))
