"""Options.from_flags end to end: errors naming the flag, kubectl's warnings, listen addresses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.testing import TestPKI
from tests.config.kubeconfig_files import SERVER, build, write_kubeconfig


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


def test_the_files_a_reload_watches(tmp_path: Path, pki: TestPKI) -> None:
    ca = tmp_path / "ca.crt"
    first = write_kubeconfig(tmp_path, "    token: t\n", f"    certificate-authority: {ca}\n")
    ca.write_bytes(pki.ca_pem)
    missing = tmp_path / "later"
    environ = {"HOME": str(tmp_path), "KUBECONFIG": f"{first}:{missing}"}
    opts = Options.from_flags(Flags(), environ=environ, cwd=str(tmp_path))
    # Every kubeconfig kubectl would read, the one missing now included, and the cluster's CA file.
    assert opts.reload_paths == (str(first), str(missing), str(ca))


def test_rebuilt_reads_the_files_again_with_the_same_flags_and_environment(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "    token: first\n", "    insecure-skip-tls-verify: true\n")
    opts = build(tmp_path, kubeconfig=str(path))
    assert opts.upstream.auth_header == b"Authorization: Bearer first\r\n"
    path.write_text(path.read_text().replace("token: first", "token: second"))
    again = opts.rebuilt()
    assert again.upstream.auth_header == b"Authorization: Bearer second\r\n"
    assert (again.flags, again.environ, again.cwd) == (opts.flags, opts.environ, opts.cwd)
    assert opts.upstream.auth_header == b"Authorization: Bearer first\r\n"  # unchanged
    path.write_text("clusters: [")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid YAML"):
        opts.rebuilt()


def test_options_made_by_hand_cannot_be_rebuilt(tmp_path: Path) -> None:
    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True)
    with pytest.raises(ConfigError, match="not built from flags"):
        replace(opts, flags=None).rebuilt()


def test_rebuilt_takes_up_new_proxy_settings(tmp_path: Path) -> None:
    # A name, not loopback: Go's rules send it through the proxy (nothing is dialled here).
    config = tmp_path / "aks.json"
    config.write_text('{"httpsProxy": "http://proxy-a.example:3128", "noProxy": ["localhost"]}')
    opts = build(
        tmp_path, server="https://api.example:6443", token="t", insecure_skip_tls_verify=True,
        http_proxy_config=str(config),
    )  # fmt: skip
    assert opts.upstream.proxy is not None and opts.upstream.proxy.display == "http://proxy-a.example:3128"
    assert str(config) in opts.reload_paths
    config.write_text('{"httpsProxy": "http://proxy-b.example:3128", "noProxy": ["localhost"]}')
    again = opts.rebuilt()
    assert again.upstream.proxy is not None and again.upstream.proxy.display == "http://proxy-b.example:3128"
    config.write_text('{"httpsProxy": "http://proxy-b.example:3128", "noProxy": ["api.example"]}')
    assert opts.rebuilt().upstream.proxy is None  # noProxy now names the server: direct


def test_client_deadlines(tmp_path: Path) -> None:
    options = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True)
    assert (options.read_header_timeout, options.idle_timeout) == (60.0, 300.0)
    options = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True, read_header_timeout=0.0, idle_timeout=2.5)
    assert (options.read_header_timeout, options.idle_timeout) == (0.0, 2.5)
