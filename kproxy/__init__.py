"""kproxy: ``kubectl proxy`` as a fast asyncio reverse proxy, embeddable as a library.

::

    import kproxy

    options = kproxy.Options.from_flags(kproxy.Flags(port=0, kubeconfig="~/.kube/config"))
    async with kproxy.ProxyServer(options) as server:
        print(server.url)   # http://127.0.0.1:PORT

Only the names in ``__all__`` are public; every other module is private. ``Flags``,
``Options`` and ``ProxyServer`` are imported on first use, so that ``kproxy --version``
and the command's start-up do not pay for what they do not use.
"""

from typing import TYPE_CHECKING, Any

from kproxy._version import __version__
from kproxy.errors import BadRequest, ConfigError, Forbidden, KproxyError, RequestError, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from kproxy.config.flags import Flags
    from kproxy.config.options import Options
    from kproxy.server import ProxyServer

_LAZY = {"Flags": "kproxy.config.flags", "Options": "kproxy.config.options", "ProxyServer": "kproxy.server"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kproxy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BadRequest",
    "ConfigError",
    "Flags",
    "Forbidden",
    "KproxyError",
    "Options",
    "ProxyServer",
    "RequestError",
    "UpstreamError",
    "UpstreamTimeout",
    "__version__",
]
