"""kproxy.cli.arguments: the parser built from the flag table, kubectl's names, short forms, defaults and spellings."""

from __future__ import annotations

import pytest

from kproxy.cli.arguments import build_parser, flags_from_namespace
from kproxy.config.flags import Flags
from kproxy.policy import filters


def test_defaults_are_kubectls() -> None:
    flags = flags_from_namespace(build_parser().parse_args([]))
    assert flags == Flags()
    assert flags.port == 8001
    assert flags.address == "127.0.0.1"
    assert flags.www_prefix == "/static/"
    assert flags.api_prefix == "/"
    assert flags.accept_hosts == r"^localhost$,^127\.0\.0\.1$,^\[::1\]$"
    assert flags.accept_paths == "^.*"
    assert flags.reject_paths == "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach"
    assert flags.reject_methods == "^$"
    assert flags.disable_filter is False
    assert flags.keepalive == 30.0
    assert flags.accept_hosts == filters.DEFAULT_ACCEPT_HOSTS


def test_short_forms_and_spellings() -> None:
    ns = build_parser().parse_args(
        [
            "-p",
            "0",
            "-u",
            "/tmp/s",
            "-w",
            "www",
            "-P",
            "/ui",
            "-s",
            "https://h:6443",
            "--disable-filter=false",
            "--append-server-path",
            "--keepalive=1m",
            "--reject-paths=",
            "--as=bob",
            "--as-group",
            "a",
            "--as-group=b",
            "--insecure-skip-tls-verify=true",
            "-v=3",
            "extra",
            "positional",
        ]
    )
    flags = flags_from_namespace(ns)
    assert flags.port == 0
    assert flags.unix_socket == "/tmp/s"
    assert flags.www == "www" and flags.www_prefix == "/ui"
    assert flags.server == "https://h:6443"
    assert flags.disable_filter is False and flags.append_server_path is True
    assert flags.keepalive == 60.0
    assert flags.reject_paths == ""
    assert flags.as_user == "bob" and flags.as_group == ("a", "b")
    assert flags.insecure_skip_tls_verify is True
    assert ns.verbosity == 3


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--port", "abc"], "--port 'abc'"),
        (["--keepalive", "5"], "--keepalive '5'"),
        (["--read-header-timeout", "60"], "--read-header-timeout '60'"),
        (["--idle-timeout=5 minutes"], "--idle-timeout '5 minutes'"),
        (["--disable-filter=maybe"], "--disable-filter 'maybe'"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 1
    assert needle in capsys.readouterr().err
