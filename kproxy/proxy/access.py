"""Who may use kproxy: the client-address gate in front of every request.

In: the authorized ranges (:mod:`kproxy.policy.ranges`, replaceable at run time on reload), the
trusted front proxies, and each request's socket peer. Out: the client address for an
admitted request, or :class:`~kproxy.errors.Forbidden` naming the address; and, for a
listener that judges a connection before reading from it (TLS: before the handshake),
whether a peer may connect at all (:meth:`ClientGate.admits_peer`). Upgraded
sessions are tracked so a reload that removes a client's range also ends its sessions.

At the door: with ranges in force and no trusted front proxies, the socket peer *is*
the client, so :meth:`ClientGate.door` judges it when the connection is accepted and
the HTTP server answers the same 403 ``Status`` before reading a byte — a client outside
the ranges cannot hold a connection with a slow head. Behind front proxies the client
is known only from each request's ``X-Forwarded-For``: then every request is judged.

Unix-socket clients have no address and are always admitted: the socket file's mode
(0700) is their access control.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kproxy.errors import Forbidden
from kproxy.http import Request, door_answer
from kproxy.log import log
from kproxy.metrics import tally
from kproxy.policy.gonet import unmap_ipv4
from kproxy.policy.ranges import THIS_MACHINE, AuthorizedRanges, IPNetwork, client_address, normalize_address
from kproxy.proxy.answers import status_response

__all__ = ["ClientGate"]

# A scan must not flood the log: one line per interval, with a count of the rest.
_DENIAL_LOG_INTERVAL = 5.0


class ClientGate:
    def __init__(self, ranges: AuthorizedRanges, trusted_proxies: tuple[IPNetwork, ...] = ()) -> None:
        self._ranges = ranges
        self._trusted = trusted_proxies
        # Whether requests need the check at all: read on the hot path, so kept, not computed.
        self.active = ranges.enabled or bool(trusted_proxies)
        self._sessions: dict[asyncio.BaseTransport, str] = {}
        self._own_addresses: dict[str, bool] = {}
        self._next_log = 0.0
        self._suppressed = 0

    @property
    def ranges(self) -> AuthorizedRanges:
        return self._ranges

    def client_of(self, request: Request) -> str | None:
        """The client's address, or None for a unix-socket client."""
        transport = request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not isinstance(peer, tuple) or not peer:
            return None
        address = unmap_ipv4(str(peer[0]))
        if self._trusted:
            forwarded = request.headers.getall("X-Forwarded-For", ())
            return client_address(address, forwarded, self._trusted)
        return address

    def admit(self, request: Request) -> str | None:
        client = self.client_of(request)
        if client is None or self.allows(client):
            return client
        self._log_denial(client, f"{request.method} {request.path}")
        raise Forbidden(f"client {client} is not in the authorized IP ranges", "ranges")

    def admits_peer(self, peer: object, when: str = "connection closed before the TLS handshake") -> bool:
        """At accept time, before a byte is read: may this peer connect? A trusted front
        proxy may (its clients, named by X-Forwarded-For, are checked per request)."""
        if not self.active or not isinstance(peer, tuple) or not peer:
            return True
        address = unmap_ipv4(str(peer[0]))
        if self._trusted:
            try:
                ip = normalize_address(address)
            except ValueError:
                return True
            if any(ip in network for network in self._trusted):
                return True
        if self.allows(address):
            return True
        self._log_denial(address, when)
        tally.reject("ranges")
        return False

    def door(self, peer: object) -> bytes | None:
        """At accept on a plain listener (kproxy.http.Admission): None to serve the peer,
        or the 403 to answer it with before anything is read."""
        if self.admits_peer(peer, "at connect"):
            return None
        assert isinstance(peer, tuple)
        client = unmap_ipv4(str(peer[0]))
        return door_answer(status_response(Forbidden(f"client {client} is not in the authorized IP ranges")))

    def allows(self, client: str) -> bool:
        ranges = self._ranges
        if not ranges.enabled or ranges.match(client) is not None:
            return True
        # AKS: 0.0.0.0/32 means "only this machine": loopback (matched above) and the
        # host's own addresses, which change with interfaces, so they are checked live.
        return THIS_MACHINE in ranges.networks and self._is_own_address(client)

    def replace(self, ranges: AuthorizedRanges) -> int:
        """Put a new list in force; close upgraded sessions it no longer admits."""
        self._ranges = ranges
        self.active = ranges.enabled or bool(self._trusted)
        self._own_addresses.clear()
        closed = 0
        for transport, client in list(self._sessions.items()):
            if not self.allows(client):
                transport.close()
                closed += 1
        return closed

    @contextmanager
    def session(self, request: Request, client: str | None) -> Iterator[None]:
        """Track an upgraded session for the length of the block."""
        transport = request.transport
        if client is None or transport is None:
            yield
            return
        self._sessions[transport] = client
        try:
            yield
        finally:
            self._sessions.pop(transport, None)

    def _is_own_address(self, client: str) -> bool:
        cached = self._own_addresses.get(client)
        if cached is None:
            cached = self._own_addresses[client] = _bindable(client)
        return cached

    def _log_denial(self, client: str, what: str) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more denials not logged)" if self._suppressed else ""
        log.warning("Denied client %s: not in the authorized IP ranges (%s)%s", client, what, more)
        self._suppressed = 0
        self._next_log = now + _DENIAL_LOG_INTERVAL


def _bindable(address: str) -> bool:
    """An address is this host's own exactly when a socket can be bound to it."""
    try:
        ip = normalize_address(address)
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(ip), 0))
        return True
    except OSError:
        return False
