"""Credentials in process: exec plugin config and output (tables), real plugin scripts run
by ExecPlugin, token and certificate files that change, OIDC against a fake issuer, and
impersonation headers. Which credential Options chooses: tests/config/test_upstream_auth.py."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kproxy.config.options import Options
from kproxy.credentials import exec_plugin, oidc
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError, UpstreamError
from kproxy.policy import exec_credential
from kproxy.testing import TestPKI
from kproxy.testing.credential_fakes import FakeOIDCIssuer, make_jwt, write_plugin
from kproxy.upstream.outbound import OutboundHTTP
from tests.config.kubeconfig_files import build_options

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SERVER = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- exec config


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"command": "p", "apiVersion": V1, "interactiveMode": "Never"}, ("p", V1, "Never")),
        ({"command": "p", "apiVersion": V1BETA1}, ("p", V1BETA1, "IfAvailable")),  # v1beta1 defaults it
        (
            {
                "command": "p",
                "apiVersion": V1,
                "interactiveMode": "Always",
                "args": ["a"],
                "env": [{"name": "A", "value": "1"}],
                "provideClusterInfo": True,
            },
            ("p", V1, "Always"),
        ),
    ],
)
def test_exec_config_accepted(raw: dict[str, Any], expected: tuple[str, str, str]) -> None:
    config = exec_credential.parse_config(raw, "alice", "where")
    assert (config.command, config.api_version, config.interactive_mode) == expected


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (
            {"apiVersion": V1, "interactiveMode": "Never"},
            "command must be specified for alice to use exec authentication plugin",
        ),
        (
            {"command": "p", "interactiveMode": "Never"},
            "apiVersion must be specified for alice to use exec authentication plugin",
        ),
        (
            {"command": "p", "apiVersion": V1},
            "interactiveMode must be specified for alice to use exec authentication plugin",
        ),
        (
            {"command": "p", "apiVersion": V1, "interactiveMode": "Sometimes"},
            'invalid interactiveMode for alice: "Sometimes"',
        ),
        (
            {"command": "p", "apiVersion": "client.authentication.k8s.io/v1alpha1", "interactiveMode": "Never"},
            'exec plugin: invalid apiVersion "client.authentication.k8s.io/v1alpha1"',
        ),
        (
            {"command": "p", "apiVersion": V1, "interactiveMode": "Never", "env": [{"value": "x"}]},
            "env variable name must be specified for alice",
        ),
        (
            {"command": "p", "apiVersion": V1, "interactiveMode": "Never", "args": "--flag"},
            "args must be a list of strings",
        ),
        ({"command": 3, "apiVersion": V1, "interactiveMode": "Never"}, "command must be a string"),
    ],
)
def test_exec_config_rejected(raw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        exec_credential.parse_config(raw, "alice", "kubeconfig: users[alice].user.exec")
    assert needle in str(info.value)
    assert str(info.value).startswith("kubeconfig: users[alice].user.exec: ")


@pytest.mark.parametrize(
    ("mode", "terminal", "interactive"),
    [
        ("Never", False, False),
        ("Never", True, False),
        ("IfAvailable", False, False),
        ("IfAvailable", True, True),
        ("Always", True, True),
    ],
)
def test_interactive_mode_rules(mode: exec_credential.InteractiveMode, terminal: bool, interactive: bool) -> None:
    assert exec_credential.is_interactive(mode, terminal, "w") is interactive


def test_always_without_a_terminal_fails_at_start() -> None:
    with pytest.raises(ConfigError) as info:
        exec_credential.is_interactive("Always", False, "w")
    assert "exec plugin cannot support interactive mode: standard input is not a terminal" in str(info.value)


def test_exec_info_carries_the_cluster() -> None:
    cluster = exec_credential.ClusterInfo(
        server="https://k:6443",
        tls_server_name="api.k",
        insecure_skip_tls_verify=False,
        certificate_authority_data=b"PEM",
        proxy_url="socks5://p:1080",
        disable_compression=True,
        config={"audience": "k8s", "list": ("a",)},
    )
    info = json.loads(exec_credential.exec_info(V1, cluster, False))
    assert info == {
        "kind": "ExecCredential",
        "apiVersion": V1,
        "spec": {
            "cluster": {
                "server": "https://k:6443",
                "tls-server-name": "api.k",
                "certificate-authority-data": b64(b"PEM"),
                "proxy-url": "socks5://p:1080",
                "disable-compression": True,
                "config": {"audience": "k8s", "list": ["a"]},
            },
            "interactive": False,
        },
    }
    assert json.loads(exec_credential.exec_info(V1BETA1, None, True))["spec"] == {"interactive": True}


# --------------------------------------------------------------------------- exec output

SECRET = "s3cr3t-token-value"


def cred(status: Any, api_version: str = V1, kind: str = "ExecCredential") -> bytes:
    return json.dumps({"apiVersion": api_version, "kind": kind, "status": status}).encode()


def test_exec_output_token_and_expiry() -> None:
    result = exec_credential.parse_output(cred({"token": SECRET, "expirationTimestamp": "2030-01-02T03:04:05Z"}), V1)
    assert result.token == SECRET
    assert result.expires == 1893553445.0
    assert SECRET not in repr(result)


def test_exec_output_certificate(pki: TestPKI) -> None:
    out = cred({"clientCertificateData": pki.client.cert_pem.decode(), "clientKeyData": pki.client.key_pem.decode()})
    result = exec_credential.parse_output(out, V1)
    assert result.cert_pem == pki.client.cert_pem and result.key_pem == pki.client.key_pem
    assert result.expires is None


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (b"", "decoding stdout: no output"),
        (f"token={SECRET}".encode(), "decoding stdout: not JSON"),
        (json.dumps([SECRET]).encode(), "couldn't get version/kind"),
        (json.dumps({"kind": "ExecCredential", "status": {"token": SECRET}}).encode(), "'apiVersion' is missing"),
        (
            cred({"token": SECRET}, api_version=V1BETA1),
            f"exec plugin is configured to use API version {V1}, plugin returned version {V1BETA1}",
        ),
        (cred({"token": SECRET}, kind="Secret"), 'no kind "Secret" is registered'),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential"}).encode(), "didn't return a status field"),
        (cred({}), "didn't return a token or cert/key pair"),
        (cred({"clientCertificateData": SECRET}), "returned only certificate or key, not both"),
        (cred({"token": SECRET, "expirationTimestamp": "tomorrow"}), "not an RFC 3339 time"),
        (cred({"token": SECRET, "expirationTimestamp": "2030-01-02T03:04:05"}), "no time zone"),
        (cred({"token": 42}), "status.token must be a string"),
    ],
)
def test_exec_output_rejected_without_quoting_it(out: bytes, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        exec_credential.parse_output(out, V1)
    assert needle in str(info.value)
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- exec runs


def plugin_source(
    tmp_path: Path,
    name: str = "plugin",
    *,
    api_version: str = V1,
    timeout: float = 30.0,
    install_hint: str = "",
    tls_for: Any = None,
    **spec: Any,
) -> tuple[Any, exec_plugin.ExecPlugin]:
    plugin = write_plugin(tmp_path / "bin", name, apiVersion=api_version, **spec)
    config = exec_credential.parse_config(
        {
            "command": str(plugin.path),
            "apiVersion": api_version,
            "interactiveMode": "Never",
            "installHint": install_hint,
            "env": [{"name": "FROM_KUBECONFIG", "value": "yes"}],
            "provideClusterInfo": True,
        },
        "u",
        "w",
    )
    source = exec_plugin.ExecPlugin(
        config,
        environ={**os.environ, "FROM_KPROXY": "env"},
        interactive=False,
        cluster=exec_credential.ClusterInfo(server=SERVER),
        timeout=timeout,
        tls_for=tls_for,
    )
    return plugin, source


async def test_concurrent_requests_share_one_run(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}", record_env=["FROM_KUBECONFIG", "FROM_KPROXY"])
    lines = await asyncio.gather(*(source.fresh() for _ in range(25)))
    assert set(lines) == {b"Authorization: Bearer tok-1\r\n"}
    assert plugin.runs == 1
    # Cached for the life of the process without an expiry.
    assert source.deadline == math.inf and await source.fresh() == lines[0] and plugin.runs == 1
    recorded = plugin.last_exec_info()
    assert recorded["env"] == {"FROM_KUBECONFIG": "yes", "FROM_KPROXY": "env"}
    assert recorded["info"]["spec"] == {"cluster": {"server": SERVER}, "interactive": False}
    assert recorded["stdin_tty"] is False


async def test_expiry_runs_the_plugin_again(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}", expires_in=3600)
    await source.fresh()
    assert 3500 < source.deadline - time.monotonic() < 3700
    plugin.configure(token="tok-{n}", expires_in=-10)  # already expired when it arrives
    source.deadline = 0.0  # as if an hour went by
    assert await source.fresh() == b"Authorization: Bearer tok-2\r\n"
    assert source.deadline < time.monotonic()
    assert await source.fresh() == b"Authorization: Bearer tok-3\r\n"  # expired: run again
    assert plugin.runs == 3


async def test_after_401_refreshes_once(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="tok-{n}")
    used = await source.fresh()
    started = time.monotonic()
    # Ten requests refused with the same token: one new run, all may retry.
    results = await asyncio.gather(*(source.after_401(used, started) for _ in range(10)))
    assert all(results) and plugin.runs == 2
    # A request that began after the refresh and is refused again: one more run.
    later = time.monotonic()
    assert await source.after_401(source.line, later) is True
    assert plugin.runs == 3
    # The plugin keeps returning the same token: nothing new to retry with.
    plugin.configure(token="same")
    t = time.monotonic()
    await source.after_401(source.line, t)
    t = time.monotonic()
    assert await source.after_401(source.line, t) is False


async def test_failures_are_clear_and_the_next_call_runs_again(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, exit=3, stderr="no account configured\n" + "x" * 5000, timeout=0.5)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    message = info.value.message
    assert f"executable {plugin.path} failed with exit code 3" in message
    assert "no account configured" in message and message.endswith("... (truncated)")
    assert len(message) < 1400
    plugin.configure(sleep=30, token="late")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"executable {plugin.path} did not finish within 0.5s" in info.value.message
    plugin.configure(stdout="{not json")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"exec plugin {plugin.path}: decoding stdout: not JSON" in info.value.message
    plugin.configure(token="fine")
    assert await source.fresh() == b"Authorization: Bearer fine\r\n"
    assert plugin.runs == 4


async def test_missing_plugin_shows_the_install_hint(tmp_path: Path) -> None:
    config = exec_credential.parse_config(
        {
            "command": "kproxy-no-such-plugin",
            "apiVersion": V1BETA1,
            "installHint": "Install it with: brew install no-such-plugin",
        },
        "u",
        "w",
    )
    source = exec_plugin.ExecPlugin(config, environ={"PATH": str(tmp_path)}, interactive=False, cluster=None)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "exec: executable kproxy-no-such-plugin not found" in info.value.message
    assert "client-go credential plugin that is not installed" in info.value.message
    assert info.value.message.endswith("Install it with: brew install no-such-plugin")
    # Looked up in kproxy's PATH, like Go's exec.Command.
    write_plugin(tmp_path, "kproxy-no-such-plugin", apiVersion=V1BETA1, token="found")
    assert await source.fresh() == b"Authorization: Bearer found\r\n"


async def test_not_executable(tmp_path: Path) -> None:
    plugin, source = plugin_source(tmp_path, token="t")
    plugin.path.chmod(0o644)
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "is not executable (permission denied)" in info.value.message


async def test_certificate_from_a_plugin_rotates_the_tls_generation(tmp_path: Path, pki: TestPKI) -> None:
    built: list[tuple[bytes | None, bytes | None]] = []

    def tls_for(cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
        built.append((cert, key))
        return credentials.tls_context(
            ca_pem=pki.ca_pem,
            ca_field="ca",
            insecure=False,
            cert_pem=cert,
            key_pem=key,
            cert_field="cert",
            key_field="key",
        )

    plugin, source = plugin_source(
        tmp_path, cert=pki.client.cert_pem.decode(), key=pki.client.key_pem.decode(), tls_for=tls_for
    )
    # A dial before the first run does not start the plugin: it gets no client certificate.
    bare = await source.context()
    assert plugin.runs == 0 and built == [(None, None)] and source.generation == 0
    assert await source.fresh() == b""  # no token: the certificate is the credential
    ctx = await source.context()
    assert ctx is not bare and source.generation == 1  # connections without it are retired
    other = pki.issue_client("rotated")
    plugin.configure(cert=other.cert_pem.decode(), key=other.key_pem.decode())
    assert await source.after_401(b"", time.monotonic()) is True
    assert source.generation == 2 and built[-1] == (other.cert_pem, other.key_pem)
    plugin.configure(cert=other.cert_pem.decode(), key=pki.client.key_pem.decode())
    with pytest.raises(UpstreamError) as info:
        source.deadline = 0
        await source.fresh()
    assert "failed parsing client key/certificate" in info.value.message
    assert "PRIVATE KEY" not in info.value.message


async def test_a_token_with_a_line_break_is_refused(tmp_path: Path) -> None:
    _, source = plugin_source(tmp_path, token="abc\r\nX-Injected: 1")
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert "control characters" in info.value.message and "abc" not in info.value.message


# --------------------------------------------------------------------------- files


async def test_token_file_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    source = credentials.TokenFile(str(path), "first", "tokenFile")
    assert source.line == b"Authorization: Bearer first\r\n"
    assert 45 < source.deadline - time.monotonic() <= 50  # client-go: a minute, 10 s leeway
    path.write_text("second")
    assert await source.fresh() == b"Authorization: Bearer first\r\n"  # not yet due
    source.deadline = 0.0
    assert await source.fresh() == b"Authorization: Bearer second\r\n"
    # A 401 re-reads at once, and says whether the token changed.
    path.write_text("third")
    assert await source.after_401(b"Authorization: Bearer second\r\n", time.monotonic()) is True
    assert source.line == b"Authorization: Bearer third\r\n"
    assert await source.after_401(source.line, time.monotonic()) is False


async def test_token_file_errors_keep_the_last_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token"
    source = credentials.TokenFile(str(path), "kept-secret", f"tokenFile ({path})")
    for content in (None, "", "two\nlines\x00"):
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content)
        source.deadline = 0.0
        assert await source.fresh() == b"Authorization: Bearer kept-secret\r\n"
    assert "Unable to rotate token" in caplog.text and str(path) in caplog.text
    assert "kept-secret" not in caplog.text and "lines" not in caplog.text


async def test_certificate_files_replaced_on_disk(tmp_path: Path, pki: TestPKI) -> None:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    cert.write_bytes(pki.client.cert_pem)
    key.write_bytes(pki.client.key_pem)
    loads: list[bytes] = []

    def build(c: bytes, k: bytes) -> ssl.SSLContext:
        loads.append(c)
        return credentials.tls_context(
            ca_pem=None,
            ca_field="",
            insecure=True,
            cert_pem=c,
            key_pem=k,
            cert_field="client-certificate",
            key_field="client-key",
        )

    first = build(pki.client.cert_pem, pki.client.key_pem)
    source = credentials.CertFiles(
        build, (str(cert), pki.client.cert_pem), (str(key), pki.client.key_pem), first, "client-certificate"
    )
    assert await source.context() is first and source.generation == 0
    other = pki.issue_client("rotated")
    cert.write_bytes(other.cert_pem)  # half-way: new certificate, old key
    assert await source.context() is first and source.generation == 0
    key.write_bytes(other.key_pem)
    second = await source.context()
    assert second is not first and source.generation == 1 and loads[-1] == other.cert_pem
    os.utime(cert)  # touched, unchanged: nothing reloads
    count = len(loads)
    source.check(time.monotonic())
    assert len(loads) == count and source.generation == 1
    assert source.check_at > time.monotonic() + 50


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((("scopes", ("view", "edit")),), b"Impersonate-Extra-Scopes: view\r\nImpersonate-Extra-Scopes: edit\r\n"),
        ((("example.com/reason", ("audit",)),), b"Impersonate-Extra-Example.com%2freason: audit\r\n"),
        ((("100%", ("x",)),), b"Impersonate-Extra-100%25: x\r\n"),
        ((("a b", ("y",)),), b"Impersonate-Extra-A%20b: y\r\n"),
        ((("ключ", ("z",)),), b"Impersonate-Extra-%d0%ba%d0%bb%d1%8e%d1%87: z\r\n"),
    ],
)
def test_impersonation_extra_keys_are_escaped_like_client_go(
    extra: tuple[tuple[str, tuple[str, ...]], ...], expected: bytes
) -> None:
    headers = credentials.impersonation_headers("jane", "", (), extra)
    assert headers == b"Impersonate-User: jane\r\n" + expected


def test_impersonation_headers_order_and_refusals() -> None:
    assert credentials.impersonation_headers("jane", "42", ("a", "b"), ()) == (
        b"Impersonate-User: jane\r\nImpersonate-Uid: 42\r\nImpersonate-Group: a\r\nImpersonate-Group: b\r\n"
    )
    assert credentials.impersonation_headers("", "42", ("a",), ()) == b""
    with pytest.raises(ConfigError):
        credentials.impersonation_headers("jane\r\nX-Evil: 1", "", (), ())


# --------------------------------------------------------------------------- OIDC


def wired_options(tmp_path: Path, **kw: object) -> Options:
    """Options whose credential can reach its issuer, as ProxyServer.start wires it."""
    opts = build_options(tmp_path, **kw)
    if opts.upstream.auth is not None:
        opts.upstream.auth.use_outbound(OutboundHTTP(opts.egress, connect_timeout=5.0))
    return opts


def test_jwt_expiry() -> None:
    assert oidc.jwt_expiry(make_jwt(1234.0)) == 1234.0
    with pytest.raises(ValueError, match="not a valid JWT"):
        oidc.jwt_expiry("opaque-token")
    assert oidc.jwt_expiry("a.e30.c") == 0.0  # {} has no exp: expired


def oidc_kubeconfig(tmp_path: Path, issuer: FakeOIDCIssuer, id_token: str, **extra: str) -> Path:
    config = {
        "idp-issuer-url": issuer.url,
        "client-id": issuer.client_id,
        "id-token": id_token,
        "refresh-token": "refresh-1",
        **extra,
    }
    if issuer.client_secret:
        config["client-secret"] = issuer.client_secret
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "o"}}],
                "users": [{"name": "o", "user": {"auth-provider": {"name": "oidc", "config": config}}}],
            }
        )
    )
    path.chmod(0o600)
    return path


async def test_oidc_refresh_persists_new_tokens(tmp_path: Path) -> None:
    async with FakeOIDCIssuer(client_secret="client-s3cret") as issuer:
        valid = make_jwt(time.time() + 3600)
        opts = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, valid)))
        source = opts.upstream.auth
        assert isinstance(source, oidc.OIDCProvider)
        assert await source.fresh() == f"Authorization: Bearer {valid}\r\n".encode()
        assert issuer.token_requests == 0

        expired = make_jwt(time.time() + 5)  # within client-go's 10 s expiry delta
        path = oidc_kubeconfig(tmp_path, issuer, expired)
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert isinstance(source, oidc.OIDCProvider)
        lines = await asyncio.gather(*(source.fresh() for _ in range(5)))
        assert set(lines) == {f"Authorization: Bearer {issuer.issued[0]}\r\n".encode()}
        assert issuer.token_requests == 1 and issuer.discovery_requests == 1
        written = yaml.safe_load(path.read_text())["users"][0]["user"]["auth-provider"]["config"]
        assert written["id-token"] == issuer.issued[0] and written["refresh-token"] == "refresh-2"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert await source.after_401(lines[0], time.monotonic()) is False  # client-go does not refresh on 401


async def test_oidc_client_credentials_fall_back_to_the_form(tmp_path: Path) -> None:
    async with FakeOIDCIssuer(client_secret="s", basic_auth=False) as issuer:
        path = oidc_kubeconfig(tmp_path, issuer, make_jwt(0))
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert source is not None
        await source.fresh()
        assert issuer.token_requests == 2 and len(issuer.issued) == 1


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (
            lambda i: setattr(
                i, "fail_with", (400, {"error": "invalid_grant", "error_description": "Token is expired"})
            ),
            "answered 400 Bad Request: invalid_grant (Token is expired)",
        ),
        (lambda i: setattr(i, "omit_id_token", True), "token response did not contain an id_token"),
        (lambda i: setattr(i, "refresh_tokens", set()), "invalid_grant (unknown refresh token)"),
    ],
)
async def test_oidc_refresh_failures(tmp_path: Path, setup: Any, needle: str) -> None:
    async with FakeOIDCIssuer(client_secret="client-s3cret") as issuer:
        setup(issuer)
        source = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, make_jwt(0)))).upstream.auth
        assert source is not None
        with pytest.raises(UpstreamError) as info:
            await source.fresh()
        message = info.value.message
        assert "failed to refresh token" in message and needle in message
        assert "users[o].user.auth-provider" in message
        for secret in ("client-s3cret", "refresh-1"):
            assert secret not in message


async def test_oidc_issuer_unreachable(tmp_path: Path) -> None:
    issuer = FakeOIDCIssuer()
    await issuer.start()
    await issuer.stop()
    source = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, make_jwt(0)))).upstream.auth
    assert source is not None
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"cannot reach the issuer {issuer.url}" in info.value.message


async def test_oidc_without_refresh_token(tmp_path: Path) -> None:
    async with FakeOIDCIssuer() as issuer:
        path = oidc_kubeconfig(tmp_path, issuer, make_jwt(0))
        doc = yaml.safe_load(path.read_text())
        del doc["users"][0]["user"]["auth-provider"]["config"]["refresh-token"]
        path.write_text(yaml.safe_dump(doc))
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert source is not None
        with pytest.raises(UpstreamError, match="No valid id-token, and cannot refresh without refresh-token"):
            await source.fresh()
