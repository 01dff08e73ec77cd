"""``kproxy --check-ip ADDR``: would this client be let in, and by which range?

In: the address, ``--authorized-ip-ranges`` and ``--authorized-ip-ranges-file`` (read
through :func:`kproxy.config.files.load_ranges_file`, relative to the working directory).
Out: one line on stdout and the exit code: 0 allowed (by which range, or because the check
is off), 1 not allowed; a :class:`~kproxy.errors.ConfigError` for a bad address or range.
"""

from __future__ import annotations

import os

from kproxy.config.files import combine_ranges, load_ranges_file
from kproxy.errors import ConfigError
from kproxy.policy.ranges import AuthorizedRanges, normalize_address

__all__ = ["check_ip"]


def check_ip(address_text: str, ranges_flag: str, ranges_file: str) -> int:
    try:
        address = normalize_address(address_text.strip())
    except ValueError:
        raise ConfigError(f"--check-ip {address_text!r}: not an IP address, e.g. 10.1.2.3 or 2001:db8::1") from None
    ranges = AuthorizedRanges.parse(ranges_flag)
    if ranges_file:
        ranges = combine_ranges(ranges, load_ranges_file(os.path.abspath(ranges_file)))
    if not ranges.enabled:
        print(f"{address} is allowed: no authorized IP ranges are configured (the check is off)")
        return 0
    match = ranges.match(address)
    if match is not None:
        print(f"{address} is allowed by {match}")
        return 0
    print(f"{address} is not in the authorized IP ranges ({ranges.describe()})")
    return 1
