"""Which kubeconfig files kubectl reads, and how they merge into one.

client-go's loader.go (``ClientConfigLoadingRules``):

* ``kubeconfig_paths(flag, environ, home)`` → the files to read, in kubectl's order:
  ``--kubeconfig``, else ``KUBECONFIG``'s list, else ``~/.kube/config``;
* ``merge(configs)`` → one :class:`~kproxy.policy.kubeconfig.model.KubeConfig`
  (``Load``): the first file to define a name wins, and the first non-empty
  current-context. Each entry keeps the file it came from, for messages.

Pure: the caller passes the environment and reads the files.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

from kproxy.policy.kubeconfig.model import KubeConfig

__all__ = ["kubeconfig_paths", "merge"]

_T = TypeVar("_T")


def kubeconfig_paths(flag: str | None, environ: Mapping[str, str], home: str | None) -> tuple[list[str], bool]:
    """(files to read in kubectl's order, whether the one file was given explicitly).

    loader.go: an explicit --kubeconfig must exist; otherwise KUBECONFIG is split with
    filepath.SplitList and deduplicated keeping the first, empty entries are skipped and
    missing files are skipped by the caller; only an unset or empty KUBECONFIG falls back to
    ~/.kube/config (so KUBECONFIG=":" means no files at all).
    """
    if flag:
        return [flag], True
    env = environ.get("KUBECONFIG", "")
    if env:
        return list(dict.fromkeys(p for p in env.split(os.pathsep) if p)), False
    return ([os.path.join(home, ".kube", "config")] if home else []), False


def merge(configs: Sequence[KubeConfig]) -> KubeConfig:
    """kubectl's KUBECONFIG merge (loader.go Load).

    For clusters, users and contexts the first file to define a name wins, whole entry
    (mergo never overwrites pointer map values); current-context is merged in reverse
    order with override, so the first non-empty one wins.
    """
    sources: dict[str, str] = {}

    def first(kind: str, tables: list[Mapping[str, _T]]) -> Mapping[str, _T]:
        out: dict[str, _T] = {}
        for cfg, table in zip(configs, tables):
            for name, value in table.items():
                if name not in out:
                    out[name] = value
                    if (key := f"{kind}[{name}]") in cfg.sources:
                        sources[key] = cfg.sources[key]
        return MappingProxyType(out)

    clusters = first("clusters", [c.clusters for c in configs])
    users = first("users", [c.users for c in configs])
    contexts = first("contexts", [c.contexts for c in configs])
    current = next((c for c in configs if c.current_context), KubeConfig())
    if "current-context" in current.sources:
        sources["current-context"] = current.sources["current-context"]
    return KubeConfig(clusters, users, contexts, current.current_context, MappingProxyType(sources))
