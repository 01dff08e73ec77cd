"""kproxy.policy.durations: Go's time.ParseDuration, accepted and refused spellings."""

from __future__ import annotations

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),  # Go: a sign, then the lone 0
        ("+0", 0.0),
        ("0s", 0.0),
        ("30s", 30.0),
        ("+5s", 5.0),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1h2m3.5s", 3723.5),
        ("1.5h", 5400.0),
        (".5s", 0.5),  # digits after the point only
        ("1.s", 1.0),  # digits before the point only
        ("500ms", 0.5),
        ("-1s", -1.0),
        ("-1m30s", -90.0),  # the sign applies to the whole duration
        ("2h45m", 9900.0),
        ("1s1s", 2.0),  # Go adds repeated units
        ("10us", 1e-5),
        ("1µs", 1e-6),  # U+00B5 MICRO SIGN
        ("1μs", 1e-6),  # U+03BC GREEK SMALL LETTER MU
        ("7ns", 7e-9),
        ("1ms1us", 1.001e-3),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration("--keepalive", text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",  # Go: invalid duration ""
        "-",
        "+",
        "30",  # missing unit
        "1m30",  # missing unit on the last part
        "00",  # only a lone 0 may go without a unit
        "s",  # a unit without a number
        ".s",  # a point without digits
        "1x",  # unknown unit
        "1S",  # units are case-sensitive
        "1H",
        "1hm",  # unknown unit "hm"
        "1e3s",  # no exponents
        "1.5.5s",
        "--1s",
        "+-1s",
        " 1s x",
        "1 s",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration("--keepalive", text)
    assert "--keepalive" in str(info.value) and repr(text) in str(info.value)
