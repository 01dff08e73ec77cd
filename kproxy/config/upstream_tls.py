"""TLS to the API server: the CA, and a client certificate that is fixed or rotates on disk.

In: the :class:`~kproxy.config.kubeconfig_loading.Loaded` cluster and user (CA and client
certificate/key as inline data or file paths, ``insecure-skip-tls-verify``) and the extra
CAs from ``--custom-ca-trust-certificates``. Out: :class:`UpstreamTLS`: the ``SSLContext``
for the first connections, a :class:`~kproxy.credentials.sources.CertFiles` source when
the certificate comes from files (client-go re-reads them; so does kproxy), the builder an
exec plugin's certificate goes through, and where the CA came from, for messages. Plain
``http://`` API servers get an empty :class:`UpstreamTLS`.

Errors name the kubeconfig field or file (``users[u].user.client-key (/path)``), never
key material.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from kproxy.config.files import read_file
from kproxy.config.kubeconfig_loading import Loaded
from kproxy.credentials import sources as credentials

__all__ = ["BuildContext", "UpstreamTLS", "upstream_tls"]

# A context for a client certificate and key (or for none): how rotated or plugin-given
# certificates become contexts, with the same CA and checks as the first one.
BuildContext = Callable[[bytes | None, bytes | None], ssl.SSLContext]


@dataclass(frozen=True)
class UpstreamTLS:
    context: ssl.SSLContext | None = None  # None: plain http://
    source: credentials.TLSSource | None = field(default=None, repr=False)  # certificate files that may rotate
    build: BuildContext | None = field(default=None, repr=False)
    ca_pem: bytes | None = None  # the cluster's CA as configured (the exec plugin's cluster info carries it)
    ca_field: str = ""  # where the CA came from, for messages; "": the system trust store
    client_certificate: bool = False  # one is configured (client-go then skips the exec plugin)


def upstream_tls(loaded: Loaded, scheme: str, extra_ca: bytes) -> UpstreamTLS:
    """Read the CA and client certificate and build the first context. Raises ConfigError."""
    if scheme != "https":
        return UpstreamTLS()
    cluster, user = loaded.cluster, loaded.user
    ca_pem, ca_field = _ca(loaded)
    user_field = loaded.user_field
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
            extra_ca=extra_ca,
        )

    context = build(cert_pem, key_pem)
    source = None
    cert_path = user.client_certificate if user.client_certificate_data is None else None
    key_path = user.client_key if user.client_key_data is None else None
    if cert_pem is not None and key_pem is not None and (cert_path or key_path):
        # Files replaced on disk are picked up for new connections (client-go's cert rotation).
        source = credentials.CertFiles(
            build,
            (cert_path, cert_pem),
            (key_path, key_pem),
            context,
            f"{user_field}.client-certificate ({cert_path or key_path})",
        )
    return UpstreamTLS(context, source, build, ca_pem, ca_field, cert_pem is not None)


def _ca(loaded: Loaded) -> tuple[bytes | None, str]:
    cluster = loaded.cluster
    if cluster.certificate_authority_data is not None:
        return cluster.certificate_authority_data, f"{loaded.cluster_field}.certificate-authority-data"
    if cluster.certificate_authority:
        pem = read_file(cluster.certificate_authority, "certificate-authority file")
        return pem, f"{loaded.cluster_field}.certificate-authority ({cluster.certificate_authority})"
    return None, ""


def _pem_source(data: bytes | None, path: str | None, field_name: str) -> tuple[bytes | None, str]:
    if data is not None:
        return data, f"{field_name}-data"
    if path:
        return read_file(path, f"{field_name} file"), f"{field_name} ({path})"
    return None, field_name
