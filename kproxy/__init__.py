"""kproxy: ``kubectl proxy`` as a fast asyncio reverse proxy, embeddable as a library.

::

    import kproxy

    options = kproxy.Options.from_flags(kproxy.Flags(port=0, kubeconfig="~/.kube/config"))
    async with kproxy.ProxyServer(options) as server:
        print(server.url)   # http://127.0.0.1:PORT

Only the names in ``__all__`` are public; every other module is private.
"""

from kproxy._version import __version__
from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import BadRequest, ConfigError, Forbidden, KproxyError, RequestError, UpstreamError, UpstreamTimeout
from kproxy.server import ProxyServer

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
