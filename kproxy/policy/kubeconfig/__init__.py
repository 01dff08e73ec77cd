"""kubeconfig files → the cluster and user that kubectl would talk to and as whom.

Pure: callers pass text, paths and mappings in; nothing here reads files or the
environment. The flow follows client-go's ``tools/clientcmd``, one module a step:

* :mod:`~kproxy.policy.kubeconfig.merging` ``kubeconfig_paths(flag, environ, home)`` →
  which files to read (loader.go);
* :mod:`~kproxy.policy.kubeconfig.parsing` ``parse(text, source)`` → one ``KubeConfig``
  (:mod:`~kproxy.policy.kubeconfig.model`): ``*-data`` fields base64-decoded, relative
  paths made absolute against the file's directory (loader.go ``ResolveLocalPaths``);
* :mod:`~kproxy.policy.kubeconfig.merging` ``merge(configs)`` → one ``KubeConfig``
  (loader.go ``Load``: first file wins);
* :mod:`~kproxy.policy.kubeconfig.selection` ``select(config, Overrides(...))`` →
  ``Selected`` cluster + user with kubectl's global flags applied (client_config.go
  ``getContext``/``getCluster``/``getAuthInfo``, validation.go ``ConfirmUsable``).

Every bad input raises ``ConfigError`` with one line naming the file, the field path
(``users[alice].user.client-key-data``) and what is wrong. Messages name fields,
never the values of tokens, passwords or keys. Where kproxy knowingly differs from
kubectl, the module doing it says so ("Deviation").
"""

from kproxy.policy.kubeconfig.merging import kubeconfig_paths, merge
from kproxy.policy.kubeconfig.model import Cluster, Context, KubeConfig, User
from kproxy.policy.kubeconfig.parsing import parse
from kproxy.policy.kubeconfig.selection import Overrides, Selected, select

__all__ = [
    "Cluster",
    "Context",
    "KubeConfig",
    "Overrides",
    "Selected",
    "User",
    "kubeconfig_paths",
    "merge",
    "parse",
    "select",
]
