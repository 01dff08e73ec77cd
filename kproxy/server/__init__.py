"""The server layer: ProxyServer's lifecycle (listen, serve, reload, drain, close), its
sockets, the file watches and reloads that take up configuration while it runs, and the
admin listener (metrics, health, readiness)."""

from kproxy.server.proxy_server import ProxyServer

__all__ = ["ProxyServer"]
