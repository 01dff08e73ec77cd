"""kproxy.config.upstream: the server URL taken apart, the fixed headers, the server-path
warning, secrets out of repr."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy._version import __version__
from kproxy.config.egress_settings import Egress
from kproxy.config.flags import Flags
from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.options import Options
from kproxy.config.upstream import build_upstream
from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig import Cluster, User

SERVER = "https://127.0.0.1:6443"


def build(tmp_path: Path, **kw: object) -> Options:
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    return Options.from_flags(flags, environ={"HOME": str(tmp_path)}, cwd=str(tmp_path))


@pytest.mark.parametrize(
    ("server", "address", "display", "host_header"),
    [
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080, ""), "http://127.0.0.1:8080", b"127.0.0.1:8080"),
        ("https://api.example", ("https", "api.example", 443, ""), "https://api.example", b"api.example"),
        ("HTTP://api.example", ("http", "api.example", 80, ""), "http://api.example", b"api.example"),
        ("https://[::1]:6443/", ("https", "::1", 6443, "/"), "https://[::1]:6443", b"[::1]:6443"),
        ("https://u:pw@h:1/k8s/c", ("https", "h", 1, "/k8s/c"), "https://h:1", b"h:1"),  # userinfo dropped
        (
            "https://bücher.example",
            ("https", "bücher.example", 443, ""),
            "https://bücher.example",
            b"xn--bcher-kva.example",
        ),
    ],
)
def test_the_server_url(server: str, address: tuple[str, str, int, str], display: str, host_header: bytes) -> None:
    cluster = Cluster(server=server, insecure_skip_tls_verify=True)
    up = build_upstream(Flags(append_server_path=True), Loaded("", "", "", "", cluster, User()), Egress(), [])
    assert (up.scheme, up.host, up.port, up.server_path) == address
    assert (up.display, up.host_header) == (display, host_header)


def test_an_invalid_port_names_the_server() -> None:
    cluster = Cluster(server="https://h:99999")
    with pytest.raises(ConfigError, match="server 'https://h:99999': invalid port"):
        build_upstream(Flags(), Loaded("", "", "", "", cluster, User()), Egress(), [])


def test_fixed_headers_and_flags() -> None:
    user = User(token="t", impersonate="jane")
    flags = Flags(connect_timeout=3.0, keepalive=0.0)
    up = build_upstream(flags, Loaded("", "", "", "", Cluster(server="http://h"), user), Egress(), [])
    agent = up.user_agent_header
    assert agent.startswith(f"User-Agent: kproxy/{__version__} ({os.uname().sysname.lower()}/".encode())
    assert agent.endswith(b")\r\n") and b"x86_64" not in agent and b"aarch64" not in agent  # Go's GOARCH names
    assert up.impersonation_headers == b"Impersonate-User: jane\r\n"
    assert (up.connect_timeout, up.keepalive, up.trusted, up.proxy) == (3.0, 0.0, "", None)


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
