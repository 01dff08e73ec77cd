"""Go's ``net.SplitHostPort`` and ``net.JoinHostPort``, the loopback test, and the address
types the policies share.

Pure: strings in, strings out. ``split_host_port`` returns ``None`` exactly where Go
returns an error (missing port, too many colons, stray brackets); the port is not
validated, as in Go.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "IPNetwork", "is_loopback_host", "join_host_port", "split_host_port", "unmap_ipv4"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go ``net.SplitHostPort``: ``None`` where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None  # missing ']', missing port, or too many colons
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host, hostport[i + 1 :]


def join_host_port(host: str, port: str) -> str:
    """Go ``net.JoinHostPort``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback_host(host: str) -> bool:
    """A bracket-free host that names this machine only: a loopback IP literal
    (``127.0.0.0/8``, ``::1``) or the name ``localhost``, exactly as written (no lookup)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def unmap_ipv4(address: str) -> str:
    """An IPv4 client of a dual-stack socket (``::ffff:127.0.0.2``) as IPv4, as Go's
    ``RemoteAddr`` shows it; any other address unchanged. Cheap: runs per request."""
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return address
