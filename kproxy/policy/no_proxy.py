"""``NO_PROXY`` as Go reads it, and the request host as Go sees it (docs/go-proxy-selection.md §5–§8).

In: a ``NO_PROXY`` value (one comma-separated string), once; then per request the host of
the request URL (brackets removed, ``%25`` already decoded to ``%``) and its effective port.
Out: :meth:`NoProxy.match` → the entry that sends the request direct (as written, trimmed and
lowercased), or ``None``; :func:`request_host` → the canonical host, its IP value if it is
an IP literal, and whether it is a loopback destination that is never proxied.

Entries are classified in Go's order (golang.org/x/net/http/httpproxy ``config.init``, §7):
``*`` anywhere in the list → everything direct; a CIDR (Go's strict parser; host bits are
masked off) → IP range, no port; ``host:port`` (last colon, IPv6 only bracketed, port not
validated); an IP literal → exact IP (compared by value); anything else → a domain, where
``*.`` is reduced to ``.``, a leading ``.`` means "subdomains only", and non-ASCII names are
converted to punycode. IP hosts are checked against IP and CIDR entries only, names against
domain entries only (CVE-2025-22870, §8). Nothing here raises: bad entries never match, and
:meth:`NoProxy.notes` lists the ones that look meaningful but cannot match.

IDNA: Go uses UTS #46 (``idna.Lookup``, nontransitional); the standard library has IDNA 2003
nameprep. The two agree on ordinary names; ``ß`` and ``ς`` are kept as Go keeps them, and
joiners (U+200C, U+200D) count as a conversion failure. Exotic code points may still differ.

Standard library only; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from encodings.idna import nameprep
from typing import Literal

from kproxy.policy.gonet import IPAddress, IPNetwork, join_host_port, split_host_port

__all__ = [
    "IPAddress",
    "NoProxy",
    "NoProxyEntry",
    "RequestHost",
    "go_trim_space",
    "idna_ascii",
    "join_host_port",
    "parse_cidr",
    "parse_ip",
    "request_host",
    "split_host_port",
]


# Go's unicode.IsSpace (strings.TrimSpace). Python's str.strip() also strips \x1c-\x1f.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def go_trim_space(s: str) -> str:
    """Go ``strings.TrimSpace``."""
    return s.strip(_GO_SPACE)


# --- Go's net.ParseIP / netip.ParseAddr / net.ParseCIDR ------------------------------------


def parse_ip(s: str, *, zone: bool = False) -> IPAddress | None:
    """Go ``netip.ParseAddr`` (``zone=True``, the zone is dropped) or ``net.ParseIP``.

    Strict like Go: four decimal IPv4 octets without leading zeros; an IPv6 zone only after
    an IPv6 address and never empty. IPv4-mapped IPv6 addresses stay IPv6 here; see
    :func:`_unmap`.
    """
    # netip.ParseAddr dispatches on the first '.', ':' or '%'.
    for ch in s:
        if ch == ".":
            try:
                return ipaddress.IPv4Address(s)
            except ValueError:
                return None
        if ch == ":":
            break
        if ch == "%":
            return None
    else:
        return None
    addr, sep, scope = s.partition("%")
    if sep and (not zone or not scope):
        return None
    try:
        return ipaddress.IPv6Address(addr)
    except ValueError:
        return None


def _unmap(ip: IPAddress) -> IPAddress:
    # Go compares through IP.To4(): an IPv4-mapped IPv6 address is that IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_cidr(s: str) -> IPNetwork | None:
    """Go ``net.ParseCIDR`` as ``IPNet.Contains`` then uses it (§7 step 2).

    The prefix length is ASCII digits (leading zeros allowed, as Go's ``dtoi``), never a
    netmask; host bits are masked off. An IPv4-mapped IPv6 network of length ≥ 96 behaves as
    the IPv4 network it maps (``::ffff:10.0.0.0/104`` = ``10.0.0.0/8``), as in Go.
    """
    addr, sep, bits = s.partition("/")
    if not sep or not bits or not (bits.isascii() and bits.isdigit()):
        return None
    ip = parse_ip(addr)
    if ip is None or int(bits) > ip.max_prefixlen:
        return None
    n = int(bits)
    net = ipaddress.ip_network((ip, n), strict=False)
    if isinstance(net, ipaddress.IPv6Network) and n >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, n - 96))
    return net


# --- IDNA (golang.org/x/net/idna Lookup profile, approximated) -----------------------------

_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_STD3 = re.compile("[a-z0-9-]*")
_DEVIATIONS = re.compile("([\u00df\u03c2])")  # ß, ς: kept by nontransitional UTS #46


def idna_ascii(s: str) -> str:
    """Go's ``idnaASCII``: ASCII is returned unchanged; otherwise punycode, or ``s`` itself
    when the conversion fails (Go ignores the error and keeps the original)."""
    if s.isascii():
        return s
    try:
        return ".".join(_label_to_ascii(label) for label in _DOTS.split(s))
    except UnicodeError:
        return s


def _label_to_ascii(label: str) -> str:
    if label == "":
        return label  # Lookup does not verify DNS lengths: ".example.com" keeps its dot
    if "\u200c" in label or "\u200d" in label:
        raise UnicodeError("joiner")  # CheckJoiners: Go rejects them outside rare contexts
    if label.isascii():
        mapped = label.lower()
        if mapped.startswith("xn--"):
            mapped[4:].encode("ascii").decode("punycode")  # must be valid punycode
    else:
        mapped = "".join(part if _DEVIATIONS.fullmatch(part) else nameprep(part) for part in _DEVIATIONS.split(label))
    ascii_part = "".join(ch for ch in mapped if ch.isascii())
    if not _STD3.fullmatch(ascii_part) or mapped.startswith("-") or mapped.endswith("-"):
        raise UnicodeError("STD3 rules")  # Lookup uses STD3 rules and CheckHyphens
    if mapped.isascii():
        return mapped
    return "xn--" + mapped.encode("punycode").decode("ascii")


# --- the request host (§5, §6) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestHost:
    """The request's host as NO_PROXY sees it.

    ``host`` is lowercased and punycoded (the zone kept), ``port`` the effective port,
    ``ip`` the IP value (zone dropped, IPv4-mapped unwrapped) or ``None`` for a name, and
    ``loopback`` the reason the host is never proxied, or ``None``.
    """

    host: str
    port: str
    ip: IPAddress | None
    loopback: str | None


def request_host(hostname: str, port: str) -> RequestHost | None:
    """Go's ``canonicalAddr`` and the first half of ``useProxy``.

    ``hostname`` is ``URL.Hostname()``, ``port`` the explicit port or the scheme's default.
    ``None`` when Go's ``net.SplitHostPort`` cannot take the address apart again: Go then
    does not use the proxy.
    """
    split = split_host_port(join_host_port(idna_ascii(hostname), port))
    if split is None:
        return None
    host, port = split
    loopback: str | None = None
    # §6: exact "localhost", case-sensitive, before lowercasing.
    if host == "localhost":
        loopback = "host localhost is never proxied"
    ip = parse_ip(host, zone=True)
    if ip is not None:
        ip = _unmap(ip)
        if ip.is_loopback:
            loopback = f"loopback address {host} is never proxied"
    return RequestHost(go_trim_space(host).lower(), port, ip, loopback)


# --- NO_PROXY ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoProxyEntry:
    """One classified entry. ``text`` is the entry as Go holds it (trimmed, lowercased)."""

    text: str
    kind: Literal["all", "cidr", "ip", "domain"]
    network: IPNetwork | None = None
    ip: IPAddress | None = None
    suffix: str = ""  # domain: always starts with "."
    match_host: bool = False  # domain: also the bare name (the entry had no leading ".")
    port: str = ""

    def matches(self, host: RequestHost) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "cidr":
            assert self.network is not None
            return host.ip is not None and host.ip.version == self.network.version and host.ip in self.network
        if self.kind == "ip":
            hit = host.ip is not None and host.ip == self.ip
        else:
            # Domain entries never match an IP host (CVE-2025-22870 fix, §8).
            hit = host.ip is None and (
                host.host.endswith(self.suffix) or (self.match_host and host.host == self.suffix[1:])
            )
        return hit and (self.port == "" or self.port == host.port)


def _classify(p: str) -> NoProxyEntry | None:
    """One trimmed, lowercased, non-empty entry → its matcher (§7 steps 2–5)."""
    net = parse_cidr(p)
    if net is not None:
        return NoProxyEntry(p, "cidr", network=net)
    split = split_host_port(p)
    if split is not None:
        phost, pport = split
        if phost == "":
            return None  # ":1": no host part
    else:
        phost, pport = p, ""
    ip = parse_ip(phost)
    if ip is not None:
        return NoProxyEntry(p, "ip", ip=_unmap(ip), port=pport)
    if phost.startswith("*."):
        phost = phost[1:]
    match_host = not phost.startswith(".")
    if match_host:
        phost = "." + phost
    return NoProxyEntry(p, "domain", suffix=idna_ascii(phost), match_host=match_host, port=pport)


@dataclass(frozen=True, slots=True)
class NoProxy:
    """A parsed ``NO_PROXY`` value: IP/CIDR entries and domain entries, each in list order."""

    ip_entries: tuple[NoProxyEntry, ...] = ()
    domain_entries: tuple[NoProxyEntry, ...] = ()

    @classmethod
    def parse(cls, value: str) -> NoProxy:
        ips: list[NoProxyEntry] = []
        domains: list[NoProxyEntry] = []
        for raw in value.split(","):
            p = go_trim_space(raw).lower()
            if not p:
                continue
            if p == "*":  # §7 step 1: anywhere in the list; Go stops reading there
                everything = NoProxyEntry("*", "all")
                return cls((everything,), (everything,))
            entry = _classify(p)
            if entry is not None:
                (ips if entry.kind in ("cidr", "ip") else domains).append(entry)
        return cls(tuple(ips), tuple(domains))

    @property
    def entries(self) -> tuple[NoProxyEntry, ...]:
        if self.ip_entries and self.ip_entries[0].kind == "all":
            return self.ip_entries
        return self.ip_entries + self.domain_entries

    def match(self, host: RequestHost) -> NoProxyEntry | None:
        """The first entry that sends ``host`` direct, in Go's order (IP entries first)."""
        if host.ip is not None:
            for entry in self.ip_entries:
                if entry.matches(host):
                    return entry
        for entry in self.domain_entries:
            if entry.matches(host):
                return entry
        return None

    def notes(self) -> tuple[str, ...]:
        """Entries that look meaningful but can never match (§7 "not supported")."""
        out: list[str] = []
        for e in self.domain_entries:
            name = e.suffix[1:] if e.match_host else e.suffix
            why = ""
            if "://" in e.text:
                why = "a URL is not an entry; write the host name"
            elif name.startswith("["):
                why = "a bracketed IPv6 address needs a port ([2001:db8::1]:443); write 2001:db8::1 for any port"
            elif "/" in name:
                why = "not a CIDR for Go (no leading zeros, no port, prefix length in range) nor a name"
            elif "*" in name:
                why = "'*' only works alone or as a '*.' prefix"
            elif ":" in name:
                why = "not a valid IP address nor a name"
            elif re.fullmatch(r"[0-9.]+", name.strip(".")):
                why = "partial IP addresses are not prefixes; use a CIDR such as 192.168.0.0/16"
            elif e.port and not (e.port.isascii() and e.port.isdigit()):
                why = f"port {e.port!r} is not a number"
            if why:
                out.append(f"entry {e.text} never matches: {why}")
        return tuple(out)
