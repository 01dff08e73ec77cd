"""Options.from_flags end to end: errors naming the flag, kubectl's warnings, listen addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from kproxy.errors import ConfigError
from tests.config.kubeconfig_files import SERVER, build


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
