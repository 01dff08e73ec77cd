"""Options.from_flags end to end: errors naming the flag, kubectl's warnings, listen addresses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import ConfigError

SERVER = "https://127.0.0.1:6443"


def build(tmp_path: Path, **kw: object) -> Options:
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    return Options.from_flags(flags, environ={"HOME": str(tmp_path)}, cwd=str(tmp_path))


def write_kubeconfig(tmp_path: Path, user: str, cluster_extra: str = "") -> Path:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {SERVER}\n{cluster_extra}"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
        f"users:\n- name: u\n  user:\n{user}"
    )
    return path


@pytest.mark.parametrize(
    ("kw", "needles"),
    [
        ({"unix_socket": "/tmp/x.sock", "port": 9000}, ["--unix-socket", "--port"]),
        ({"www": "w", "www_prefix": "/", "api_prefix": "/"}, ["--www-prefix", "--api-prefix"]),
        ({"api_prefix": "custom"}, ["--api-prefix", "custom"]),
        ({"reject_paths": "["}, ["--reject-paths", "'['"]),
        ({"accept_paths": "(?!x)"}, ["--accept-paths", "(?!x)"]),
        ({"reject_methods": "POST,"}, ["--reject-methods", "POST,"]),
        ({"port": 70000}, ["--port", "70000"]),
        ({"context": "nope"}, ["nope"]),
        ({"read_header_timeout": -1.0}, ["--read-header-timeout", "-1s", "negative"]),
        ({"idle_timeout": -0.5}, ["--idle-timeout", "-0.5s", "negative"]),
    ],
)
def test_bad_flags_name_the_flag(tmp_path: Path, kw: dict[str, object], needles: list[str]) -> None:
    kw.setdefault("server", SERVER)
    kw.setdefault("insecure_skip_tls_verify", True)
    with pytest.raises(ConfigError) as info:
        build(tmp_path, **kw)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_missing_www_warns_like_kubectl(tmp_path: Path) -> None:
    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, www="nowhere")
    assert opts.warnings == ("Failed to stat static file directory nowhere: stat nowhere: no such file or directory",)
    (tmp_path / "file").write_text("x")
    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, www="file")
    assert opts.warnings == ("Static file directory file is not a directory",)


def test_disable_filter_warning(tmp_path: Path) -> None:
    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, disable_filter=True)
    assert opts.request_filter is None
    assert opts.warnings == ("Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious",)
    opts = build(
        tmp_path, server=SERVER, insecure_skip_tls_verify=True, disable_filter=True, unix_socket=str(tmp_path / "s")
    )
    assert opts.warnings == ()


@pytest.mark.parametrize(
    ("address", "host", "dual"),
    [
        ("::1", "::1", False),
        ("[::1]", "::1", False),
        ("localhost", "127.0.0.1", False),
        ("0.0.0.0", "::", True),
    ],
)
def test_addresses(tmp_path: Path, address: str, host: str, dual: bool) -> None:
    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, address=address)
    assert opts.listen.host == host and opts.listen.dual_stack is dual


def test_client_deadlines(tmp_path: Path) -> None:
    options = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True)
    assert (options.read_header_timeout, options.idle_timeout) == (60.0, 300.0)
    options = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, read_header_timeout=0.0, idle_timeout=2.5)
    assert (options.read_header_timeout, options.idle_timeout) == (0.0, 2.5)
