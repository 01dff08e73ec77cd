"""kproxy.policy.ranges: authorized IP ranges (AKS rules) and trusted front proxies, as tables.

Property tests check the interval matcher against the naive ``any(ip in net for net in ...)``.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kproxy.policy.ranges
from kproxy.errors import ConfigError
from kproxy.policy.ranges import (
    THIS_MACHINE,
    AuthorizedRanges,
    IPAddress,
    IPNetwork,
    client_address,
    normalize_address,
    parse_trusted_proxies,
)

net = ipaddress.ip_network


def test_all_names_exist() -> None:
    assert all(hasattr(kproxy.policy.ranges, name) for name in kproxy.policy.ranges.__all__)


# ---------------------------------------------------------------- parsing a flag value


@pytest.mark.parametrize(
    ("value", "networks"),
    [
        ("73.140.245.0/24", ["73.140.245.0/24"]),
        ("73.140.245.0/24,193.168.1.0/24,194.168.1.0/24", ["73.140.245.0/24", "193.168.1.0/24", "194.168.1.0/24"]),
        ("2001:db8::/32", ["2001:db8::/32"]),
        ("73.140.245.0/24,2001:db8::/32", ["73.140.245.0/24", "2001:db8::/32"]),
        ("203.0.113.7", ["203.0.113.7/32"]),  # a bare address is one host
        ("2001:db8::1", ["2001:db8::1/128"]),
        ("::1", ["::1/128"]),
        (" 10.0.0.0/8 , ::1 ", ["10.0.0.0/8", "::1/128"]),  # whitespace around entries
        ("\t10.0.0.0/8,\n192.168.0.0/16\n", ["10.0.0.0/8", "192.168.0.0/16"]),
        ("0.0.0.0/0", ["0.0.0.0/0"]),
        ("::/0", ["::/0"]),
        ("0.0.0.0/32", ["0.0.0.0/32"]),
        ("0.0.0.0", ["0.0.0.0/32"]),
        ("10.0.0.0/8,10.0.0.0/8", ["10.0.0.0/8", "10.0.0.0/8"]),  # kept as given
        ("2001:DB8::/32", ["2001:db8::/32"]),
        ("::fffe:0:0/95", ["::fffe:0:0/95"]),  # next to the IPv4-mapped block, not in it
    ],
)
def test_parse_valid(value: str, networks: list[str]) -> None:
    ranges = AuthorizedRanges.parse(value)
    assert ranges.networks == tuple(net(n) for n in networks)
    assert ranges.enabled
    assert len(ranges) == len(networks)


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_empty_value_disables_the_check(value: str) -> None:
    # AKS: `--api-server-authorized-ip-ranges ""` disables the feature.
    ranges = AuthorizedRanges.parse(value)
    assert not ranges.enabled
    assert len(ranges) == 0
    assert ranges.allows("203.0.113.7")
    assert ranges.allows("::1")
    assert ranges.match("203.0.113.7") is None
    assert "disabled" in ranges.describe()


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        # AKS: "you must use the network address (first IP address in the range)".
        ("137.117.106.90/29", ["entry 1", "'137.117.106.90/29'", "use '137.117.106.88/29'", "137.117.106.95"]),
        ("10.0.0.0/8,137.117.106.90/29", ["entry 2", "use '137.117.106.88/29'"]),
        ("2001:db8::1/32", ["entry 1", "use '2001:db8::/32'"]),
        ("10.1.0.0/8", ["use '10.0.0.0/8'"]),
        ("1.2.3.4/0", ["use '0.0.0.0/0'"]),
        # Malformed entries: the entry, its 1-based position, and what a valid one looks like.
        ("1.2.3", ["entry 1", "'1.2.3'", "Expected 4 octets", "73.140.245.0/24"]),
        ("10.0.0.0/8,256.1.1.1", ["entry 2", "'256.1.1.1'", "such as"]),
        ("010.1.1.1", ["'010.1.1.1'", "Leading zeros"]),  # octal or decimal? Python refuses too
        ("10.0.0.0/33", ["prefix length must be 0 to 32"]),
        ("2001:db8::/129", ["prefix length must be 0 to 128"]),
        ("10.0.0.0/08", ["without leading zeros"]),
        ("10.0.0.0/", ["after '/' must be a prefix length"]),
        ("10.0.0.0/x", ["after '/' must be a prefix length"]),
        ("10.0.0.0/+8", ["after '/' must be a prefix length"]),
        ("10.0.0.0/8/8", ["after '/' must be a prefix length"]),
        ("10.0.0.0/255.0.0.0", ["after '/' must be a prefix length", "write '10.0.0.0/8'"]),
        ("10.0.0.0 /8", ["no spaces or commas"]),
        ("10.0.0.0 10.1.0.0", ["no spaces or commas"]),
        ("fe80::%eth0/64", ["zone", "write 'fe80::/64'"]),
        ("fe80::1%eth0", ["zone", "write 'fe80::1'"]),
        ("example.com", ["'example.com'"]),
        ("gg::1", ["Only hex digits"]),
        ("1::2::3", ["At most one '::'"]),
        ("/24", ["'/24'"]),
        ("\uff11.2.3.4", ["such as"]),  # a fullwidth digit is not an ASCII digit
        ("10.0.0.0/\u0668", ["after '/' must be a prefix length"]),  # nor an Arabic-Indic one
        # IPv4-mapped clients are matched as IPv4, so a mapped range would never match.
        ("::ffff:10.0.0.0/104", ["IPv4-mapped", "use '10.0.0.0/8'"]),
        ("::ffff:1.2.3.4", ["IPv4-mapped", "use '1.2.3.4'"]),
        # Empty elements: a stray comma is an error, not "match everything" or "disabled".
        ("10.0.0.0/8,", ["entry 2", "is empty", "did you mean --authorized-ip-ranges='10.0.0.0/8'"]),
        (",10.0.0.0/8", ["entry 1", "is empty"]),
        ("10.0.0.0/8,,::1", ["entry 2", "is empty", "'10.0.0.0/8,::1'"]),
        ("10.0.0.0/8, ,::1", ["entry 2", "is empty"]),
        (",", ["entry 1", "is empty"]),
    ],
)
def test_parse_invalid(value: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        AuthorizedRanges.parse(value)
    message = str(info.value)
    assert message.startswith("--authorized-ip-ranges")
    for fragment in fragments:
        assert fragment in message


def test_parse_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^KPROXY_RANGES entry 1: "):
        AuthorizedRanges.parse("1.2.3", source="KPROXY_RANGES")


# ---------------------------------------------------------------- parsing a ranges file


def test_parse_file_text() -> None:
    text = (
        "\ufeff# office and CI\n"
        "73.140.245.0/24      # office\n"
        "\n"
        "   2001:db8::/32\r\n"
        "203.0.113.7#ci\n"
        "   # indented comment\n"
        "\t\n"
    )
    ranges = AuthorizedRanges.parse_file_text(text, source="ranges.txt")
    assert ranges.networks == (net("73.140.245.0/24"), net("2001:db8::/32"), net("203.0.113.7/32"))


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("10.0.0.0/8\n# two\n137.117.106.90/29\n", ["ranges.txt line 3", "use '137.117.106.88/29'"]),
        ("10.0.0.0/8\n1.2.3\n", ["ranges.txt line 2", "'1.2.3'"]),
        ("10.0.0.0/8, 192.168.0.0/16\n", ["ranges.txt line 1", "one entry per line"]),
        ("10.0.0.0/8 192.168.0.0/16\n", ["ranges.txt line 1", "one entry per line"]),
        # A half-written file must never open the gate.
        ("", ["ranges.txt", "at least one entry", "empty file would"]),
        ("\n\n", ["at least one entry"]),
        ("# nothing yet\n   # still nothing\n", ["at least one entry"]),
    ],
)
def test_parse_file_text_invalid(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        AuthorizedRanges.parse_file_text(text, source="ranges.txt")
    for fragment in fragments:
        assert fragment in str(info.value)


# ---------------------------------------------------------------- matching

RANGES = AuthorizedRanges.parse("73.140.245.0/24,10.0.0.0/8,10.1.0.0/16,2001:db8::/32,198.51.100.7")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("73.140.245.0", "73.140.245.0/24"),
        ("73.140.245.255", "73.140.245.0/24"),
        ("73.140.244.255", None),
        ("73.140.246.0", None),
        ("10.1.2.3", "10.0.0.0/8"),  # nested ranges: the widest one is reported
        ("11.0.0.0", None),
        ("198.51.100.7", "198.51.100.7/32"),
        ("198.51.100.8", None),
        ("2001:db8::1", "2001:db8::/32"),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32"),
        ("2001:db9::", None),
        ("::ffff:10.1.2.3", "10.0.0.0/8"),  # IPv4-mapped: matched as IPv4
        ("::ffff:203.0.113.7", None),
        ("2001:db8::1%eth0", "2001:db8::/32"),  # the zone is ignored
        ("127.0.0.1", None),  # loopback gets no favour
        ("::1", None),
        ("::ffff:127.0.0.1", None),
        ("not-an-address", None),  # fail closed
        ("", None),
        ("10.0.0.1/32", None),
        (ipaddress.ip_address("10.9.9.9"), "10.0.0.0/8"),
        (ipaddress.ip_address("::ffff:10.9.9.9"), "10.0.0.0/8"),
    ],
)
def test_match(address: str | IPAddress, expected: str | None) -> None:
    found = RANGES.match(address)
    assert found == (net(expected) if expected else None)
    assert RANGES.allows(address) is (expected is not None)


def test_loopback_allowed_only_when_covered() -> None:
    ranges = AuthorizedRanges.parse("127.0.0.2,::1")
    assert ranges.allows("127.0.0.2")
    assert not ranges.allows("127.0.0.1")
    assert not ranges.allows("127.0.0.3")
    assert ranges.allows("::1")
    assert ranges.match("::ffff:127.0.0.2") == net("127.0.0.2/32")


def test_ipv6_any_does_not_admit_ipv4_clients() -> None:
    ranges = AuthorizedRanges.parse("::/0")
    assert ranges.allows("2001:db8::1")
    assert not ranges.allows("::ffff:203.0.113.7")
    assert not ranges.allows("203.0.113.7")


# AKS: 0.0.0.0/32 "restricts API server access to only the cluster's own outbound IP"; for
# kproxy that is this machine: loopback plus the host's own addresses, given by the caller.
@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "0.0.0.0/32"),
        ("127.255.255.254", "0.0.0.0/32"),
        ("::1", "0.0.0.0/32"),
        ("::ffff:127.0.0.1", "0.0.0.0/32"),
        ("192.168.1.5", "0.0.0.0/32"),  # a local address
        ("::ffff:192.168.1.5", "0.0.0.0/32"),
        ("fe80::1", "0.0.0.0/32"),  # given with a zone
        ("fe80::1%lo", "0.0.0.0/32"),
        ("2001:db8::5", "0.0.0.0/32"),
        ("172.16.0.1", "0.0.0.0/32"),  # given IPv4-mapped
        ("10.0.0.9", "10.0.0.0/8"),  # an ordinary range beside it
        ("10.0.0.5", "10.0.0.0/8"),  # a local address inside a wider range: the wider one
        ("192.168.1.6", None),
        ("0.0.0.0", None),  # 0.0.0.0 stands for this machine; no client has it
        ("203.0.113.7", None),
    ],
)
def test_this_machine(address: str, expected: str | None) -> None:
    ranges = AuthorizedRanges.parse("10.0.0.0/8,0.0.0.0/32").with_local_addresses(
        ["192.168.1.5", "fe80::1%eth0", "2001:db8::5", "::ffff:172.16.0.1", "10.0.0.5", "192.168.1.5"]
    )
    assert ranges.local_addresses == tuple(
        ipaddress.ip_address(a) for a in ("192.168.1.5", "fe80::1", "2001:db8::5", "172.16.0.1", "10.0.0.5")
    )
    assert ranges.match(address) == (net(expected) if expected else None)


def test_this_machine_without_local_addresses_is_loopback_only() -> None:
    ranges = AuthorizedRanges.parse("0.0.0.0")
    assert ranges.networks == (THIS_MACHINE,)
    assert ranges.allows("127.0.0.1")
    assert ranges.allows("::1")
    assert not ranges.allows("192.168.1.5")


def test_local_addresses_matter_only_with_this_machine() -> None:
    ranges = AuthorizedRanges.parse("10.0.0.0/8").with_local_addresses(["192.168.1.5"])
    assert not ranges.allows("192.168.1.5")
    assert not ranges.allows("127.0.0.1")


def test_with_local_addresses_is_a_copy() -> None:
    ranges = AuthorizedRanges.parse("0.0.0.0/32")
    local = ranges.with_local_addresses([ipaddress.ip_address("192.168.1.5")])
    assert not ranges.allows("192.168.1.5")
    assert local.allows("192.168.1.5")
    assert local.networks == ranges.networks
    with pytest.raises(ValueError):
        ranges.with_local_addresses(["not-an-address"])


def test_equality_and_copying() -> None:
    assert AuthorizedRanges.parse("10.0.0.0/8") == AuthorizedRanges.parse(" 10.0.0.0/8 ")
    assert AuthorizedRanges.parse("10.0.0.0/8") != AuthorizedRanges.parse("10.0.0.0/9")
    assert AuthorizedRanges() == AuthorizedRanges.parse("")


@pytest.mark.parametrize(
    ("value", "local", "line"),
    [
        ("", (), "authorized IP ranges: none, every client address is allowed (the check is disabled)"),
        ("10.0.0.0/8", (), "authorized IP ranges: 1 range in force (1 IPv4, 0 IPv6)"),
        ("10.0.0.0/8,::1,192.168.0.0/16", (), "authorized IP ranges: 3 ranges in force (2 IPv4, 1 IPv6)"),
        (
            "0.0.0.0/32",
            ("192.168.1.5",),
            "authorized IP ranges: 1 range in force (1 IPv4, 0 IPv6);"
            " 0.0.0.0/32 admits this machine: loopback and 1 local address",
        ),
    ],
)
def test_describe(value: str, local: tuple[str, ...], line: str) -> None:
    assert AuthorizedRanges.parse(value).with_local_addresses(local).describe() == line


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:DB8::1", "2001:db8::1"),
        (ipaddress.IPv6Address("fe80::1%eth0"), "fe80::1"),
    ],
)
def test_normalize_address(address: str | IPAddress, expected: str) -> None:
    normalized = normalize_address(address)
    assert normalized == ipaddress.ip_address(expected)
    assert str(normalized) == expected


# ---------------------------------------------------------------- many ranges


def _naive_int(spans: list[tuple[int, int]], value: int) -> bool:
    return any(start <= value <= end for start, end in spans)


def test_ten_thousand_ranges() -> None:
    rng = random.Random(6)
    networks: list[IPNetwork] = []
    for i in range(10_000):
        if i % 4:
            networks.append(ipaddress.IPv4Network((rng.getrandbits(32), rng.randint(12, 32)), strict=False))
        else:
            networks.append(
                ipaddress.IPv6Network((rng.getrandbits(128) | 1 << 125, rng.randint(20, 128)), strict=False)
            )
    ranges = AuthorizedRanges.parse(",".join(map(str, networks)))
    assert len(ranges) == 10_000
    assert ranges.networks == tuple(networks)
    # Every range's first and last address is allowed, by a range that covers it.
    for network in rng.sample(networks, 200):
        for address in (network.network_address, network.broadcast_address):
            found = ranges.match(address)
            assert found is not None and address in found
    # Random addresses agree with a naive scan (on integers, to keep the test light).
    spans4 = [(int(n.network_address), int(n.broadcast_address)) for n in networks if n.version == 4]
    for _ in range(100):
        value = rng.getrandbits(32)
        assert ranges.allows(ipaddress.IPv4Address(value)) is _naive_int(spans4, value)


# ---------------------------------------------------------------- property tests


def _v4_networks() -> st.SearchStrategy[IPNetwork]:
    return st.builds(
        lambda value, prefix: ipaddress.IPv4Network((value, prefix), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
    ).filter(lambda n: n != THIS_MACHINE)


def _v6_networks() -> st.SearchStrategy[IPNetwork]:
    return st.builds(
        lambda value, prefix: ipaddress.IPv6Network((value, prefix), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(0, 128),
    ).filter(lambda n: not (n.prefixlen >= 96 and int(n.network_address) >> 32 == 0xFFFF))


def _addresses(networks: list[IPNetwork]) -> st.SearchStrategy[IPAddress]:
    """Addresses near the ranges (inside, at and just past their edges) and anywhere."""
    anywhere: st.SearchStrategy[IPAddress] = st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    )
    if not networks:
        return anywhere

    def near(network: IPNetwork, offset: int) -> IPAddress:
        cls = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
        top = 2**network.max_prefixlen - 1
        return cls(min(max(int(network.network_address) + offset, 0), top))

    sizes = st.sampled_from(networks).flatmap(lambda n: st.tuples(st.just(n), st.integers(-2, n.num_addresses + 1)))
    return st.one_of(anywhere, sizes.map(lambda pair: near(*pair)))


NETWORK_LISTS = st.lists(st.one_of(_v4_networks(), _v6_networks()), max_size=12)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), networks=NETWORK_LISTS)
def test_match_agrees_with_naive(data: st.DataObject, networks: list[IPNetwork]) -> None:
    ranges = AuthorizedRanges.parse(",".join(map(str, networks)))
    assert ranges.networks == tuple(networks)
    for _ in range(5):
        address = data.draw(_addresses(networks))
        naive = any(address in network for network in networks)
        found = ranges.match(address)
        assert (found is not None) is naive
        assert ranges.allows(address) is (naive or not networks)
        if found is not None:
            assert found in networks and address in found
        if isinstance(address, ipaddress.IPv4Address):
            # The same client seen through an IPv6 socket (::ffff:a.b.c.d), with and without text.
            mapped = ipaddress.IPv6Address(f"::ffff:{address}")
            assert ranges.match(mapped) == found
            assert ranges.match(str(mapped)) == found
        else:
            assert ranges.match(f"{address}%eth0") == found


@settings(max_examples=60, deadline=None)
@given(networks=st.lists(_v4_networks(), min_size=1, max_size=8), local=st.lists(st.ip_addresses(), max_size=4))
def test_this_machine_agrees_with_naive(networks: list[IPNetwork], local: list[IPAddress]) -> None:
    ranges = AuthorizedRanges((*networks, THIS_MACHINE)).with_local_addresses(local)
    machine = [net("127.0.0.0/8"), net("::1/128"), *(net(normalize_address(a)) for a in local)]
    for address in [*local, ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]:
        assert ranges.allows(address)
    for value in (0x0A000001, 0xC0A80105, 0x7F000001, 0x80000000):
        address = ipaddress.IPv4Address(value)
        naive = any(address in n for n in [*networks, *machine])
        assert ranges.allows(address) is naive


# ---------------------------------------------------------------- trusted proxies


def test_parse_trusted_proxies() -> None:
    assert parse_trusted_proxies("") == ()
    assert parse_trusted_proxies("10.0.0.0/8, 2001:db8::1") == (net("10.0.0.0/8"), net("2001:db8::1/128"))
    with pytest.raises(ConfigError, match=r"--trusted-proxies entry 2: .*use '10\.0\.0\.0/8'"):
        parse_trusted_proxies("192.168.0.0/16,10.1.0.0/8")
    with pytest.raises(ConfigError, match=r"--trusted-proxies: entry 2 .* is empty"):
        parse_trusted_proxies("10.0.0.0/8,")


TRUSTED = parse_trusted_proxies("10.0.0.0/8,2001:db8:1::/48")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # No header, or an untrusted peer: the peer, whatever the header says.
        ("203.0.113.7", [], "203.0.113.7"),
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("::ffff:203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        # A trusted peer: the nearest untrusted address, walking from the right.
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
        ("10.0.0.1", ["6.6.6.6, 198.51.100.1, 10.0.0.2"], "198.51.100.1"),  # 6.6.6.6 is the client's claim
        ("10.0.0.1", ["6.6.6.6", "198.51.100.1", "10.0.0.2"], "198.51.100.1"),  # several headers, in order
        ("10.0.0.1", ["garbage, 198.51.100.1"], "198.51.100.1"),  # left of the client: never read
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the leftmost
        ("2001:db8:1::5", ["2001:db8:2::9"], "2001:db8:2::9"),
        ("2001:db8:1::5", ["[2001:db8:2::9]:4711"], "2001:db8:2::9"),  # balancers that add the port
        ("10.0.0.1", ["198.51.100.1:51234"], "198.51.100.1"),
        ("10.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["fe80::1%eth0"], "fe80::1"),
        # Garbage met on the walk: the chain cannot be trusted; the peer it is.
        ("10.0.0.1", ["unknown"], "10.0.0.1"),
        ("10.0.0.1", [""], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1,"], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1, garbage, 10.0.0.2"], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1:port"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1]x"], "10.0.0.1"),
        ("10.0.0.1", ["198.51.100.1/32"], "10.0.0.1"),
        # A peer with no address (a Unix socket) comes back as it is.
        ("", ["198.51.100.1"], ""),
    ],
)
def test_client_address(peer: str, forwarded_for: list[str], expected: str) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_client_address_trusts_nobody_by_default() -> None:
    assert client_address("10.0.0.1", ["198.51.100.1"], ()) == "10.0.0.1"
