"""Options.from_flags: validation, kubeconfig loading, TLS material and warnings."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.options import Flags, Options
from kproxy.errors import ConfigError
from kproxy.testing import TestPKI

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


def test_no_configuration_suggests_the_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path)
    assert "kproxy --demo" in str(info.value)
    assert "localhost:8080" not in str(info.value)


def test_server_flag_alone(tmp_path: Path) -> None:
    opts = build(tmp_path, server="http://127.0.0.1:8080", insecure_skip_tls_verify=None)
    assert opts.upstream.host == "127.0.0.1" and opts.upstream.port == 8080
    assert opts.upstream.host_header == b"127.0.0.1:8080"
    assert opts.upstream.ssl_context is None
    assert opts.warnings == ()


def test_token_is_never_in_repr(tmp_path: Path) -> None:
    opts = build(tmp_path, server=SERVER, token="s3cr3t-token", insecure_skip_tls_verify=True)
    assert opts.upstream.auth_header == b"Authorization: Bearer s3cr3t-token\r\n"
    assert "s3cr3t" not in repr(opts)
    assert "s3cr3t" not in repr(Flags(token="s3cr3t-token"))


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


def test_client_certificate_from_kubeconfig(tmp_path: Path) -> None:
    pki = TestPKI.create()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    path = write_kubeconfig(
        tmp_path,
        f"    client-certificate-data: {b64(pki.client.cert_pem)}\n    client-key-data: {b64(pki.client.key_pem)}\n",
        f"    certificate-authority-data: {b64(pki.ca_pem)}\n",
    )
    opts = build(tmp_path, kubeconfig=str(path))
    assert opts.upstream.ssl_context is not None
    assert opts.upstream.auth_header == b""


def test_key_that_does_not_match_names_the_fields(tmp_path: Path) -> None:
    pki = TestPKI.create()
    other = TestPKI.create()
    (tmp_path / "c.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "c.key").write_bytes(other.client.key_pem)
    path = write_kubeconfig(
        tmp_path, "    client-certificate: c.crt\n    client-key: c.key\n", "    insecure-skip-tls-verify: true\n"
    )
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    message = str(info.value)
    assert "users[u].user.client-key" in message and "does not match" in message
    assert "PRIVATE KEY" not in message


def test_bad_ca_data_names_the_field(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path,
        "    token: abc\n",
        f"    certificate-authority-data: {base64.b64encode(b'not a certificate').decode()}\n",
    )
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    assert "clusters[k].cluster.certificate-authority-data" in str(info.value)


def test_unreadable_ca_file(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "    token: abc\n", "    certificate-authority: missing.crt\n")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    assert str(tmp_path / "missing.crt") in str(info.value)


def test_server_path_warning(tmp_path: Path) -> None:
    opts = build(tmp_path, server=SERVER + "/k8s/clusters/c-abc", insecure_skip_tls_verify=True)
    assert opts.warnings == (
        "Your kube context contains a server path /k8s/clusters/c-abc, use --append-server-path "
        "to automatically append the path to each request",
    )
    opts = build(
        tmp_path, server=SERVER + "/k8s/clusters/c-abc", insecure_skip_tls_verify=True, append_server_path=True
    )
    assert opts.warnings == ()


def test_strict_x509_is_off(tmp_path: Path) -> None:
    import ssl

    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True)
    ctx = opts.upstream.ssl_context
    assert ctx is not None
    assert not ctx.verify_flags & getattr(ssl, "VERIFY_X509_STRICT", 0x20)


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
