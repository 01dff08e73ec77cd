"""Where kproxy listens: ``--port``, ``--address`` and ``--unix-socket`` checked and made ready for bind().

In: :class:`~kproxy.config.flags.Flags`. Out: :class:`Listen`, or a
:class:`~kproxy.errors.ConfigError` naming the flag. kubectl's quirks kept: ``localhost``
binds 127.0.0.1 (the first address Go resolves it to), ``0.0.0.0`` listens dual-stack on
``[::]``, IPv6 addresses work with or without brackets.
"""

from __future__ import annotations

from dataclasses import dataclass

from kproxy.config.flags import Flags
from kproxy.errors import ConfigError

__all__ = ["Listen", "listen_on"]


@dataclass(frozen=True)
class Listen:
    host: str  # bracket-free, ready for bind(); "" with a unix socket
    port: int
    unix_socket: str
    dual_stack: bool  # kubectl's 0.0.0.0 listens on [::] for both families


def listen_on(flags: Flags) -> Listen:
    if flags.unix_socket and flags.port != Flags.port:
        # kubectl compares with the default (the class attribute), so an explicit
        # --port=8001 is accepted.
        raise ConfigError("cannot set --unix-socket and --port at the same time")
    if not 0 <= flags.port <= 65535:
        raise ConfigError(f"--port {flags.port}: must be between 0 and 65535")
    if flags.unix_socket:
        return Listen("", 0, flags.unix_socket, False)
    host = flags.address.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ConfigError('--address "": give an IP address or host name to listen on, e.g. 127.0.0.1')
    if host == "localhost":
        host = "127.0.0.1"  # Go binds the first address localhost resolves to
    dual = host == "0.0.0.0"
    return Listen("::" if dual else host, flags.port, "", dual)
