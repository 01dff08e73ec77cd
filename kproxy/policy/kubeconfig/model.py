"""The kubeconfig model: client-go's ``clientcmd/api`` Config, as kproxy reads it.

Frozen dataclasses holding what :func:`~kproxy.policy.kubeconfig.parsing.parse` decoded:
clusters, users and contexts by name, the current context, and where each entry came
from (for messages). ``*-data`` fields hold decoded bytes, paths are absolute; fields that
can hold secrets (tokens, passwords, keys, exec and auth-provider settings, proxy URLs)
are left out of ``repr``. Mappings are read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Cluster", "Context", "KubeConfig", "User"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY  # a shared read-only default (dataclasses refuse unhashable defaults)


@dataclass(frozen=True)
class Cluster:
    server: str = ""
    certificate_authority: str | None = None  # absolute path
    certificate_authority_data: bytes | None = None  # decoded PEM
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    proxy_url: str = field(default="", repr=False)  # may carry proxy credentials
    disable_compression: bool = False
    # name → extension; "client.authentication.k8s.io/exec" is the exec plugin's cluster config
    extensions: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class User:
    token: str = field(default="", repr=False)
    token_file: str | None = None  # absolute path
    username: str = ""
    password: str = field(default="", repr=False)
    client_certificate: str | None = None  # absolute path
    client_certificate_data: bytes | None = None  # decoded PEM
    client_key: str | None = None  # absolute path
    client_key_data: bytes | None = field(default=None, repr=False)  # decoded PEM
    impersonate: str = ""  # as
    impersonate_uid: str = ""  # as-uid
    impersonate_groups: tuple[str, ...] = ()  # as-groups
    impersonate_extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # as-user-extra
    # Raw, read-only (dicts → mappings, lists → tuples). Hidden from repr: they hold secrets.
    exec: Mapping[str, Any] | None = field(default=None, repr=False)
    auth_provider: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Context:
    cluster: str = ""
    user: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class KubeConfig:
    clusters: Mapping[str, Cluster] = field(default_factory=_empty)
    users: Mapping[str, User] = field(default_factory=_empty)
    contexts: Mapping[str, Context] = field(default_factory=_empty)
    current_context: str = ""
    # Where each entry came from (client-go's LocationOfOrigin), for messages:
    # "clusters[NAME]", "users[NAME]", "contexts[NAME]", "current-context" → file path.
    sources: Mapping[str, str] = field(default_factory=_empty)
