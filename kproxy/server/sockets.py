"""The listening sockets: TCP (port 0 allowed, kubectl's dual-stack 0.0.0.0) or a unix socket.

In: the address to listen on. Out: a bound, listening, non-blocking socket, or a
:class:`~kproxy.errors.ConfigError` in Go's words (``listen tcp HOST:PORT: bind: address
already in use``). A unix socket is created mode 0700 like kubectl's and removed on exit.
"""

from __future__ import annotations

import os
import socket
import stat

from kproxy.errors import ConfigError
from kproxy.policy.gonet import join_host_port

__all__ = ["remove_socket", "tcp_socket", "unix_socket"]


def tcp_socket(host: str, port: int, dual_stack: bool) -> socket.socket:
    shown = join_host_port(host, str(port))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"listen tcp {shown}: lookup {host}: {exc.strerror}") from None
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(sockaddr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if dual_stack and family == socket.AF_INET6 and exc.errno != 98:
            return tcp_socket("0.0.0.0", port, False)  # no IPv6 on this host
        raise ConfigError(f"listen tcp {shown}: bind: {(exc.strerror or str(exc)).lower()}") from None
    sock.setblocking(False)
    return sock


def unix_socket(path: str) -> socket.socket:
    # Like kubectl: a stale socket from a killed proxy is replaced, anything else is not.
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # the socket is as private as kubectl's: srwx------
    try:
        sock.bind(path)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"listen unix {path}: bind: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        os.umask(old)
    sock.setblocking(False)
    return sock


def remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
