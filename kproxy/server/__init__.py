"""The server layer: ProxyServer's lifecycle (listen, serve, reload, drain, close), its
sockets, and the file watches that reload configuration while it runs."""

from kproxy.server.proxy_server import ProxyServer

__all__ = ["ProxyServer"]
