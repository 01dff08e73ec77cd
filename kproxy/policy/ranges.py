"""Authorized IP ranges: which client addresses may use kproxy (AKS's API server rule).

In: the raw ``--authorized-ip-ranges`` value or the text of an ``--authorized-ip-ranges-file``
(once, and again on each reload), optionally the host's own addresses (gathered by the caller,
for ``0.0.0.0/32``); then per request the client's address.
Out: an :class:`AuthorizedRanges` answering :meth:`~AuthorizedRanges.allows` and
:meth:`~AuthorizedRanges.match` (which range let the client in) in O(log n); and, for
``--trusted-proxies``, :func:`parse_trusted_proxies` and :func:`client_address`, which takes
the client from ``X-Forwarded-For`` only when the direct peer is a trusted proxy.

Grammar (``--authorized-ip-ranges`` and ``--trusted-proxies``)::

    value   = "" | entry *( "," entry )     ; whitespace around an entry is ignored
    entry   = address [ "/" prefix ]         ; a bare address is a /32 (IPv4) or /128 (IPv6)
    address = IPv4 dotted quad, no leading zeros | IPv6 text form, no zone ("%eth0")
    prefix  = 0-32 (IPv4) or 0-128 (IPv6), decimal, no leading zeros

Examples::

    "73.140.245.0/24,2001:db8::/32"    two ranges
    " 203.0.113.7 , ::1 "              203.0.113.7/32 and ::1/128 (whitespace trimmed)
    ""                                 no ranges: the check is disabled (as in AKS)
    "0.0.0.0/32"                       only this machine: loopback and the host's own addresses (AKS)
    "137.117.106.90/29"                error: use 137.117.106.88/29, the network address (AKS)
    "10.0.0.0/8,"                      error: entry 2 is empty
    "010.0.0.1"                        error: leading zeros (octal or decimal?)
    "10.0.0.0/255.0.0.0"               error: use the prefix length, 10.0.0.0/8
    "::ffff:10.0.0.0/104"              error: IPv4-mapped clients are matched as IPv4; use 10.0.0.0/8

A ranges file holds one entry per line; ``#`` starts a comment; blank lines are ignored. It
must hold at least one entry, so a truncated or half-written file never disables the check::

    # office and CI
    73.140.245.0/24      # office
    2001:db8::/32
    203.0.113.7          # the CI runner

Matching: an IPv4-mapped IPv6 client (``::ffff:a.b.c.d``, seen when listening on ``::``) is
matched as IPv4, so ``::/0`` does not admit IPv4 clients; a zone (``fe80::1%eth0``) is
ignored. Loopback clients get no favour: they are allowed only if a range covers them, or
through ``0.0.0.0/32``. Unix-socket clients have no address; the caller allows them.

Standard library only; no I/O.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from kproxy.errors import ConfigError
from kproxy.policy.gonet import IPAddress, IPNetwork

__all__ = [
    "AuthorizedRanges",
    "IPAddress",
    "IPNetwork",
    "THIS_MACHINE",
    "client_address",
    "normalize_address",
    "parse_trusted_proxies",
]


# AKS: "0.0.0.0/32 ... tells AKS to allow only the outbound public IP of the Standard SKU load
# balancer", i.e. the cluster itself. For kproxy that is this machine: loopback and the host's
# own addresses (which the caller gathers and passes to with_local_addresses).
THIS_MACHINE = ipaddress.IPv4Network("0.0.0.0/32")
_LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128"))
_EXAMPLES = "write an address such as 73.140.245.7 or 2001:db8::1, or a range such as 73.140.245.0/24 or 2001:db8::/32"


def normalize_address(address: str | IPAddress) -> IPAddress:
    """The address a client is matched as: zone dropped, IPv4-mapped IPv6 turned into IPv4.

    ``"::ffff:10.1.2.3"`` → ``10.1.2.3``; ``"fe80::1%eth0"`` → ``fe80::1``. Raises ValueError
    for anything that is not an IP address.
    """
    if isinstance(address, str):
        address = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


def _parse_entry(entry: str, where: str) -> IPNetwork:
    """One stripped, non-empty entry → its network; ``where`` names it in errors."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{where}: {entry!r} is not a valid IP address or CIDR range ({reason}); {_EXAMPLES}")

    if "," in entry or any(c.isspace() for c in entry):
        raise bad(
            "an entry has no spaces or commas inside: one entry per line in a file, "
            "entries separated by commas in a flag"
        )
    text, slash, prefix_text = entry.partition("/")
    if "%" in entry:
        fixed = text.partition("%")[0] + (f"/{prefix_text.partition('%')[0]}" if slash else "")
        raise bad(f"a zone is not part of a range; write {fixed!r}")
    # The family's own class, rather than ip_address(), keeps its reason ("Leading zeros are
    # not permitted ...") and parses only once.
    v6 = ":" in text
    try:
        address: IPAddress = ipaddress.IPv6Address(text) if v6 else ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise bad(str(exc)) from None
    bits: int = address.max_prefixlen
    if not slash:
        prefix = bits
    elif prefix_text.isascii() and prefix_text.isdigit():
        prefix = int(prefix_text)
        if prefix > bits or (len(prefix_text) > 1 and prefix_text[0] == "0"):
            raise bad(f"the prefix length must be 0 to {bits} for IPv{address.version}, without leading zeros")
    else:
        try:  # a netmask ("/255.255.255.0") is valid to ipaddress but not to AKS: name the CIDR form
            hint = f"; write {str(ipaddress.ip_network(entry, strict=False))!r}"
        except ValueError:
            hint = ""
        raise bad(f"the part after '/' must be a prefix length, 0 to {bits}{hint}")
    network_class = ipaddress.IPv6Network if v6 else ipaddress.IPv4Network
    value = int(address)
    host_bits = (1 << (bits - prefix)) - 1
    if value & host_bits:
        # AKS: "When you specify a CIDR range, you must use the network address (first IP
        # address in the range)": 137.117.106.90/29 is refused, 137.117.106.88/29 is meant.
        network = network_class((value & ~host_bits, prefix))
        raise ConfigError(
            f"{where}: {entry!r} is not the network address of its range; use '{network}'"
            f" (a CIDR range must be written with its first address: {network.network_address}"
            f" to {network.broadcast_address})"
        )
    if v6 and prefix >= 96 and value >> 32 == 0xFFFF:  # inside ::ffff:0:0/96
        v4 = ipaddress.IPv4Network((value & 0xFFFFFFFF, prefix - 96))
        kind, right = ("range", str(v4)) if slash else ("address", str(v4.network_address))
        raise ConfigError(
            f"{where}: {entry!r} is an IPv4-mapped IPv6 {kind}, which never matches:"
            f" IPv4-mapped clients are matched as IPv4; use {right!r}"
        )
    return network_class((value, prefix))


def _parse_list(value: str, source: str) -> tuple[IPNetwork, ...]:
    if value.strip() == "":
        return ()  # AKS: an empty value ("") disables the check
    entries = [entry.strip() for entry in value.split(",")]
    for position, entry in enumerate(entries, 1):
        if not entry:
            kept = ",".join(e for e in entries if e)
            raise ConfigError(
                f"{source}: entry {position} of {value!r} is empty (a leading, trailing or doubled comma);"
                f" did you mean {source}={kept!r}? ({source}='' means no ranges at all)"
            )
    return tuple(_parse_entry(entry, f"{source} entry {position}") for position, entry in enumerate(entries, 1))


def parse_trusted_proxies(value: str) -> tuple[IPNetwork, ...]:
    """``--trusted-proxies``: the same syntax and checks as ranges; ``""`` trusts nobody."""
    return _parse_list(value, "--trusted-proxies")


def _span(net: IPNetwork) -> tuple[int, int]:
    """First and last address as integers (cheaper than the cached broadcast_address)."""
    start = int(net.network_address)
    return start, start | ((1 << (net.max_prefixlen - net.prefixlen)) - 1)


@dataclass(frozen=True, slots=True)
class _Intervals:
    """Disjoint address intervals of one family, sorted by start, each with the range to report."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    reported: tuple[IPNetwork, ...]

    @classmethod
    def build(cls, items: Iterable[tuple[IPNetwork, IPNetwork]]) -> _Intervals:
        # Two CIDR blocks are either disjoint or nested, so the outermost blocks are disjoint:
        # sort by start (widest first, then in the order given) and drop every block that
        # starts inside the one kept before it. The rest are the merged intervals.
        ordered = sorted((_span(net) + (report,) for net, report in items), key=lambda item: (item[0], -item[1]))
        starts: list[int] = []
        ends: list[int] = []
        reported: list[IPNetwork] = []
        for start, end, report in ordered:
            if ends and start <= ends[-1]:
                continue
            starts.append(start)
            ends.append(end)
            reported.append(report)
        return cls(tuple(starts), tuple(ends), tuple(reported))

    def find(self, value: int) -> IPNetwork | None:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.reported[i]
        return None


@dataclass(frozen=True, slots=True)
class AuthorizedRanges:
    """The client allow list: ranges as given, plus the host's addresses for ``0.0.0.0/32``.

    Build it with :meth:`parse` or :meth:`parse_file_text`; an empty list disables the check.
    """

    networks: tuple[IPNetwork, ...] = ()
    local_addresses: tuple[IPAddress, ...] = ()
    _v4: _Intervals = field(init=False, repr=False, compare=False)
    _v6: _Intervals = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        items: list[tuple[IPNetwork, IPNetwork]] = []
        for net in self.networks:
            if net == THIS_MACHINE:
                # Not 0.0.0.0 itself (no client has it) but what it stands for.
                items.extend((loopback, THIS_MACHINE) for loopback in _LOOPBACK)
                items.extend((ipaddress.ip_network(a), THIS_MACHINE) for a in self.local_addresses)
            else:
                items.append((net, net))
        object.__setattr__(self, "_v4", _Intervals.build(i for i in items if i[0].version == 4))
        object.__setattr__(self, "_v6", _Intervals.build(i for i in items if i[0].version == 6))

    @classmethod
    def parse(cls, value: str, *, source: str = "--authorized-ip-ranges") -> AuthorizedRanges:
        """Parse a comma-separated flag value (module docstring); errors name ``source``."""
        return cls(_parse_list(value, source))

    @classmethod
    def parse_file_text(cls, text: str, *, source: str) -> AuthorizedRanges:
        """Parse a ranges file's text, one entry per line; errors name ``source`` and the line."""
        networks: list[IPNetwork] = []
        for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
            entry = line.partition("#")[0].strip()
            if entry:
                networks.append(_parse_entry(entry, f"{source} line {number}"))
        if not networks:
            raise ConfigError(
                f"{source}: holds no ranges; a ranges file must hold at least one entry"
                " (an empty file would disable the check and let every client in, so a"
                " half-written file is refused); to disable the check, use --authorized-ip-ranges=''"
            )
        return cls(tuple(networks))

    def with_local_addresses(self, addresses: Iterable[str | IPAddress]) -> AuthorizedRanges:
        """A copy that knows the host's own addresses, which ``0.0.0.0/32`` admits.

        Zones and IPv4 mapping are removed; a value that is not an address raises ValueError.
        """
        normalized = dict.fromkeys(normalize_address(a) for a in addresses)
        return replace(self, local_addresses=tuple(normalized))

    @property
    def enabled(self) -> bool:
        """False for an empty list: every client is allowed (AKS: ``""`` disables the check)."""
        return bool(self.networks)

    def match(self, address: str | IPAddress) -> IPNetwork | None:
        """The range that allows ``address``, or None (also for a value that is no address).

        Where ranges nest, the widest is reported; ``0.0.0.0/32`` is reported for loopback
        and local addresses it admits.
        """
        try:
            ip = normalize_address(address)
        except ValueError:
            return None  # never let something that is not an address in
        intervals = self._v4 if ip.version == 4 else self._v6
        return intervals.find(int(ip))

    def allows(self, address: str | IPAddress) -> bool:
        """Whether a client at ``address`` may be served: always when the check is disabled."""
        return not self.networks or self.match(address) is not None

    def __len__(self) -> int:
        return len(self.networks)

    def describe(self) -> str:
        """One line for the start-up notice on stderr."""
        if not self.networks:
            return "authorized IP ranges: none, every client address is allowed (the check is disabled)"
        v4 = sum(1 for net in self.networks if net.version == 4)
        count = len(self.networks)
        line = f"authorized IP ranges: {count} range{'s' if count != 1 else ''} in force ({v4} IPv4, {count - v4} IPv6)"
        if THIS_MACHINE in self.networks:
            local = len(self.local_addresses)
            line += f"; 0.0.0.0/32 admits this machine: loopback and {local} local address{'es' if local != 1 else ''}"
        return line


def _forwarded_address(entry: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` element → its address, or None if it is not one.

    Some balancers (Azure Application Gateway among them) append the port:
    ``203.0.113.7:51234`` and ``[2001:db8::1]:51234`` are read as their address.
    """
    entry = entry.strip()
    if entry.startswith("["):
        inner, bracket, port = entry[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit())):
            return None
        entry = inner
    elif entry.count(":") == 1:
        entry, _, port = entry.partition(":")
        if not (port.isascii() and port.isdigit()):
            return None
    try:
        return normalize_address(entry)
    except ValueError:
        return None


def _trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The real client: the direct ``peer``, unless it is a trusted proxy.

    ``forwarded_for`` holds the ``X-Forwarded-For`` header values in order (each a
    comma-separated chain, the nearest proxy's peer last). The header is read only when the
    peer is in ``trusted``; the chain is then walked from the right past trusted proxies and
    the first untrusted address is the client (the leftmost one if all are trusted).
    Entries left of it were written by the client and are never looked at. An element that
    is not an address, met on the walk, means the chain cannot be trusted: the peer is
    returned. Addresses come back normalized (see :func:`normalize_address`).
    """
    try:
        peer_ip = normalize_address(peer)
    except ValueError:
        return peer  # no address (a Unix socket): nothing to look up
    if not trusted or not forwarded_for or not _trusted(peer_ip, trusted):
        return str(peer_ip)
    chain = [entry for value in forwarded_for for entry in value.split(",")]
    client = peer_ip
    for entry in reversed(chain):
        ip = _forwarded_address(entry)
        if ip is None:
            return str(peer_ip)
        client = ip
        if not _trusted(ip, trusted):
            break
    return str(client)
