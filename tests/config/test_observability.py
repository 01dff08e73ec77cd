"""kproxy.config.observability: --metrics-address, --access-log, --access-log-file checked,
each bad value refused with one line naming the flag and what would be right."""

from __future__ import annotations

from pathlib import Path

import pytest

from kproxy import ConfigError, Flags
from kproxy.config.observability import READINESS_PERIOD_ENV, Observability, observability


def observe(environ: dict[str, str] | None = None, **flags: str) -> Observability:
    return observability(Flags(**flags), environ or {}, "/base")  # type: ignore[arg-type]


def test_everything_is_off_by_default() -> None:
    seen = observe()
    assert seen == Observability() and not seen.metrics and seen.access_log == "" and seen.readiness_period == 10


@pytest.mark.parametrize(
    ("address", "host", "port", "display"),
    [
        ("127.0.0.1:9090", "127.0.0.1", 9090, "127.0.0.1:9090"),
        ("localhost:9090", "127.0.0.1", 9090, "127.0.0.1:9090"),
        ("[::1]:9090", "::1", 9090, "[::1]:9090"),
        (":9090", "", 9090, ":9090"),
        ("127.0.0.1:0", "127.0.0.1", 0, "127.0.0.1:0"),
        (" 0.0.0.0:65535 ", "0.0.0.0", 65535, "0.0.0.0:65535"),
    ],
)
def test_metrics_addresses(address: str, host: str, port: int, display: str) -> None:
    seen = observe(metrics_address=address)
    assert (seen.metrics_host, seen.metrics_port, seen.metrics, seen.metrics_display) == (host, port, True, display)


@pytest.mark.parametrize("address", ["9090", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "::1:9090", "1.2.3.4:70000"])
def test_bad_metrics_addresses_name_the_flag(address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        observe(metrics_address=address)
    message = str(caught.value)
    assert message.startswith(f"--metrics-address {address!r}: ") and "HOST:PORT" in message
    assert "\n" not in message


@pytest.mark.parametrize(("value", "fmt"), [("json", "json"), ("text", "text"), ("JSON", "json"), ("", "")])
def test_access_log_formats(value: str, fmt: str) -> None:
    assert observe(access_log=value).access_log == fmt


def test_an_unknown_access_log_format_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^--access-log 'xml': use text or json$"):
        observe(access_log="xml")


def test_the_access_log_file_is_absolute_and_needs_a_format(tmp_path: Path) -> None:
    assert observe(access_log="json", access_log_file="logs/a.log").access_log_file == "/base/logs/a.log"
    assert observe(access_log="json", access_log_file=str(tmp_path / "a")).access_log_file == str(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"^--access-log-file a.log: also give the format, --access-log text"):
        observe(access_log_file="a.log")


def test_the_readiness_period_comes_from_the_environment() -> None:
    assert observe({READINESS_PERIOD_ENV: "0.5"}).readiness_period == 0.5
    for bad in ("0", "-1", "x", "inf", "nan"):
        with pytest.raises(ConfigError, match=rf"^{READINESS_PERIOD_ENV}='{bad}': a number of seconds above 0"):
            observe({READINESS_PERIOD_ENV: bad})
