"""kproxy.cli.check_ip: the answer and exit code for an address, from the flag and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kproxy.cli.check_ip import check_ip
from kproxy.errors import ConfigError


@pytest.mark.parametrize(
    ("address", "ranges", "file_text", "code", "line"),
    [
        ("10.1.2.3", "", None, 0, "10.1.2.3 is allowed: no authorized IP ranges are configured (the check is off)"),
        ("10.1.2.3", "10.0.0.0/8", None, 0, "10.1.2.3 is allowed by 10.0.0.0/8"),
        (" ::ffff:10.1.2.3 ", "10.0.0.0/8", None, 0, "10.1.2.3 is allowed by 10.0.0.0/8"),
        ("fe80::1%eth0", "fe80::/10", None, 0, "fe80::1 is allowed by fe80::/10"),
        ("11.0.0.1", "10.0.0.0/8", None, 1, "11.0.0.1 is not in the authorized IP ranges (authorized IP ranges: "),
        ("192.168.1.5", "10.0.0.0/8", "# office\n192.168.1.0/24\n", 0, "192.168.1.5 is allowed by 192.168.1.0/24"),
        ("10.1.2.3", "10.0.0.0/8", "192.168.1.0/24\n", 0, "10.1.2.3 is allowed by 10.0.0.0/8"),  # both count
        ("10.1.2.3", "", "192.168.1.0/24\n", 1, "10.1.2.3 is not in the authorized IP ranges"),
    ],
)
def test_check_ip(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    address: str,
    ranges: str,
    file_text: str | None,
    code: int,
    line: str,
) -> None:
    path = ""
    if file_text is not None:
        (tmp_path / "ranges").write_text(file_text)
        path = str(tmp_path / "ranges")
    assert check_ip(address, ranges, path) == code
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


@pytest.mark.parametrize(
    ("address", "ranges", "file", "needle"),
    [
        ("nope", "", "", "--check-ip 'nope': not an IP address, e.g. 10.1.2.3 or 2001:db8::1"),
        ("10.1.2.3", "10.0.0.0/33", "", "--authorized-ip-ranges"),
        ("10.1.2.3", "", "/nonexistent/ranges", "cannot read --authorized-ip-ranges-file /nonexistent/ranges"),
    ],
)
def test_check_ip_refuses(address: str, ranges: str, file: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_ip(address, ranges, file)
    assert needle in str(info.value)
