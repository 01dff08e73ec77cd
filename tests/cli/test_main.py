"""kproxy.cli.main: dispatch to the subcommands and modes, errors as one line and exit 1."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator

import pytest

from kproxy.cli.main import main
from kproxy.log import log


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    # main() sets up the kproxy logger for a process; give it back to pytest afterwards.
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    yield
    log.handlers[:] = handlers
    log.setLevel(level)
    log.propagate = propagate


def test_subcommands_come_before_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["url", "svc/web:http", "-n", "shop"]) == 0
    assert capsys.readouterr().out == ("http://127.0.0.1:8001/api/v1/namespaces/shop/services/web:http/proxy/\n")


@pytest.mark.parametrize(
    ("argv", "code", "out"),
    [
        (["--check-ip", "10.1.2.3", "--authorized-ip-ranges", "10.0.0.0/8"], 0, "10.1.2.3 is allowed by 10.0.0.0/8\n"),
        (["--check-ip", "11.0.0.1", "--authorized-ip-ranges", "10.0.0.0/8"], 1, "11.0.0.1 is not in"),
    ],
)
def test_check_ip(argv: list[str], code: int, out: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    assert capsys.readouterr().out.startswith(out)


def test_explain_egress(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "http://10.1.2.3:8080", "--explain-egress", "http://example.com/"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "proxy settings: the environment",
        "  HTTP_PROXY   (not set)",
        "  HTTPS_PROXY  (not set)",
        "  NO_PROXY     (not set)",
        "API server http://10.1.2.3:8080",
        "  direct: HTTP_PROXY and http_proxy are not set",
        "http://example.com/",
        "  direct: HTTP_PROXY and http_proxy are not set",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--check-ip", "nope"], "error: --check-ip 'nope': not an IP address, e.g. 10.1.2.3 or 2001:db8::1\n"),
        (["--demo", "--server", "https://h"], "error: --demo runs its own cluster: drop --kubeconfig and --server\n"),
        (["--server", "https://h", "--port", "70000"], "error: --port 70000: must be between 0 and 65535\n"),
    ],
)
def test_configuration_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)


@pytest.mark.parametrize("enabled", [True, False])
def test_start_up_runs_without_the_cyclic_collector_and_gives_it_back(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/startup.md §5: collections would only walk what start-up makes to keep.
    seen: list[bool] = []
    main_module = importlib.import_module("kproxy.cli.main")  # the module, not kproxy.cli's main()
    inner: Callable[[list[str]], int] = main_module._main

    def spy(args: list[str]) -> int:
        seen.append(gc.isenabled())
        return inner(args)

    monkeypatch.setattr(main_module, "_main", spy)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        assert main(["--check-ip", "10.1.2.3"]) == 0
        assert (seen, gc.isenabled()) == ([False], enabled)
    finally:
        (gc.enable if was else gc.disable)()
