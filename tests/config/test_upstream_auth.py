"""kproxy.config.upstream_auth: one function per kind of credential (tables, no process
started), client-go's precedence among them, and Options choosing through kubeconfigs."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.upstream_auth import (
    auth_provider,
    exec_auth,
    exec_timeout,
    static_auth,
    token_file,
    user_auth,
)
from kproxy.config.upstream_tls import UpstreamTLS
from kproxy.credentials import exec_plugin, oidc
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy import exec_credential
from kproxy.policy.kubeconfig import Cluster, User
from kproxy.testing import TestPKI
from tests.config.kubeconfig_files import EXEC, SERVER, build_options, kubeconfig_with

OIDC_CONFIG: dict[str, Any] = {"idp-issuer-url": "https://issuer", "client-id": "kproxy"}
OIDC: dict[str, Any] = {"name": "oidc", "config": OIDC_CONFIG}


def loaded(user: User, **kw: Any) -> Loaded:
    return Loaded("c", "k", "u", "default", Cluster(server=SERVER), user, **kw)


def kind_of(auth_source: object, header: bytes) -> str:
    kinds = {exec_plugin.ExecPlugin: "exec", credentials.TokenFile: "file", oidc.OIDCProvider: "oidc"}
    return kinds.get(type(auth_source), "static" if header else "none")


# -- static token and basic auth ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "line"),
    [
        (User(token="t0k"), b"Authorization: Bearer t0k\r\n"),
        (User(username="alice", password="pw"), b"Authorization: Basic YWxpY2U6cHc=\r\n"),
        (User(username="alice"), b"Authorization: Basic YWxpY2U6\r\n"),
        (User(token="t0k", username="alice", password="pw"), b"Authorization: Bearer t0k\r\n"),  # the token wins
        (User(), b""),
    ],
)
def test_static_auth(user: User, line: bytes) -> None:
    assert static_auth(user) == line


def test_static_token_with_a_line_break_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as info:
        static_auth(User(token="t0k\nX-Evil: 1"))
    assert "control characters" in str(info.value) and "t0k" not in str(info.value)


# -- token file ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "in_cluster", "error"),
    [
        ("file-token\n", False, None),
        ("file-token\n", True, None),
        ("  \n", False, "users[u].user.tokenFile ({path}): read empty token from file"),
        ("", True, "in-cluster service account token ({path}): read empty token from file"),
        (None, False, "cannot read users[u].user.tokenFile {path}: No such file or directory"),
    ],
)
def test_token_file(tmp_path: Path, content: str | None, in_cluster: bool, error: str | None) -> None:
    path = tmp_path / "tok"
    if content is not None:
        path.write_text(content)
    if error is not None:
        with pytest.raises(ConfigError) as info:
            token_file(str(path), "users[u].user", in_cluster=in_cluster)
        assert str(info.value) == error.format(path=path)
        return
    source = token_file(str(path), "users[u].user", in_cluster=in_cluster)
    assert source.line == b"Authorization: Bearer file-token\r\n"
    assert "file-token" not in repr(source)


# -- auth-provider ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"name": "gcp"}, "The gcp auth plugin has been removed.\n"),
        ({"name": "azure"}, "The azure auth plugin has been removed.\n"),
        ({"name": "openstack"}, 'W.auth-provider: no Auth Provider found for name "openstack"; kproxy supports oidc'),
        ({}, 'W.auth-provider: no Auth Provider found for name "None"'),
        ({"name": "oidc"}, "W.auth-provider: Must provide idp-issuer-url"),
        ({"name": "oidc", "config": {"idp-issuer-url": "https://i"}}, "W.auth-provider: Must provide client-id"),
        (
            {"name": "oidc", "config": {**OIDC_CONFIG, "idp-certificate-authority-data": "not base64!"}},
            "W.auth-provider.config.idp-certificate-authority-data: is not valid base64",
        ),
        (
            {"name": "oidc", "config": {**OIDC_CONFIG, "idp-certificate-authority": "/nonexistent/ca.crt"}},
            "cannot read idp-certificate-authority file /nonexistent/ca.crt",
        ),
        (
            {"name": "oidc", "config": {**OIDC_CONFIG, "id-token": "opaque"}},
            "W.auth-provider.config.id-token: ID Token is not a valid JWT",
        ),
    ],
)
def test_auth_provider_refusals(provider: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        auth_provider(provider, "W.auth-provider", None)
    assert str(info.value).startswith(message)


def test_auth_provider_oidc(pki: TestPKI) -> None:
    config = {**OIDC_CONFIG, "idp-certificate-authority-data": base64.b64encode(pki.ca_pem).decode()}
    source = auth_provider({"name": "oidc", "config": config}, "W", ("/k/config", "u"))
    assert isinstance(source, oidc.OIDCProvider)
    assert source.line == b"" and source.deadline == -math.inf  # no id-token yet: the first request refreshes


# -- exec plugin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "timeout"),
    [
        ({}, exec_plugin.DEFAULT_TIMEOUT),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": ""}, exec_plugin.DEFAULT_TIMEOUT),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "2.5"}, 2.5),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": " 30 "}, 30.0),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "soon"}, None),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "0"}, None),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "-1"}, None),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "nan"}, None),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "inf"}, None),
        ({"KPROXY_EXEC_PLUGIN_TIMEOUT": "1e9"}, None),
    ],
)
def test_exec_timeout(environ: dict[str, str], timeout: float | None) -> None:
    if timeout is None:
        with pytest.raises(ConfigError, match="KPROXY_EXEC_PLUGIN_TIMEOUT=.*: give a number of seconds, e.g. 120"):
            exec_timeout(environ)
    else:
        assert exec_timeout(environ) == timeout


@pytest.mark.parametrize(
    ("mode", "terminal", "interactive"),
    [
        ("Never", True, False),
        ("IfAvailable", True, True),
        ("IfAvailable", False, False),
        ("Always", True, True),
        ("Always", False, None),  # fails at start-up
    ],
)
def test_exec_auth_interactive_mode(mode: str, terminal: bool, interactive: bool | None) -> None:
    def build() -> exec_plugin.ExecPlugin:
        return exec_auth(
            {**EXEC, "interactiveMode": mode},
            user_name="u",
            where="W.exec",
            cluster=Cluster(server=SERVER),
            ca_pem=None,
            environ={"KPROXY_EXEC_PLUGIN_TIMEOUT": "7"},
            terminal=terminal,
            tls_for=None,
        )

    if interactive is None:
        with pytest.raises(ConfigError, match="W.exec: exec plugin cannot support interactive mode"):
            build()
        return
    plugin = build()
    assert plugin._interactive is interactive and plugin._timeout == 7.0


def test_exec_auth_sends_the_cluster_when_asked() -> None:
    cluster = Cluster(server=SERVER, tls_server_name="api", extensions={exec_credential.EXEC_EXTENSION: {"a": 1}})
    plugin = exec_auth(
        {**EXEC, "provideClusterInfo": True},
        user_name="u",
        where="W.exec",
        cluster=cluster,
        ca_pem=b"CA",
        environ={},
        terminal=False,
        tls_for=None,
    )
    spec = json.loads(plugin._environ["KUBERNETES_EXEC_INFO"])["spec"]
    assert spec == {
        "cluster": {
            "server": SERVER,
            "tls-server-name": "api",
            "certificate-authority-data": base64.b64encode(b"CA").decode(),
            "config": {"a": 1},
        },
        "interactive": False,
    }


# -- precedence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "client_certificate", "kind"),
    [
        (User(), False, "none"),
        (User(token="t"), False, "static"),
        (User(username="a", password="b"), False, "static"),
        (User(exec=EXEC), False, "exec"),
        (User(exec=EXEC, token="t"), False, "static"),  # a token makes client-go skip the plugin
        (User(exec=EXEC), True, "none"),  # so does a client certificate
        (User(exec=EXEC, token_file="TOK"), False, "file"),
        (User(token="t", token_file="TOK"), False, "file"),  # the file, re-read, wins over the token
        (User(token="t", token_file="TOK", exec=EXEC, auth_provider=OIDC), False, "oidc"),  # outermost
    ],
)
def test_user_auth_precedence(tmp_path: Path, user: User, client_certificate: bool, kind: str) -> None:
    (tmp_path / "tok").write_text("file-token")
    if user.token_file:
        user = replace(user, token_file=str(tmp_path / "tok"))
    auth = user_auth(loaded(user), UpstreamTLS(client_certificate=client_certificate))
    assert kind_of(auth.source, auth.header) == kind
    assert (auth.header != b"") is (kind == "static")
    assert auth.tls is None  # plain TLS material: nothing for an exec plugin to sign with


def test_user_auth_exec_over_tls_is_also_the_tls_source() -> None:
    tls = UpstreamTLS(build=lambda cert, key: pytest.fail("not built until the plugin answers"))
    auth = user_auth(loaded(User(exec=EXEC)), tls)
    assert isinstance(auth.source, exec_plugin.ExecPlugin) and auth.tls is auth.source


def test_user_auth_names_fields_after_the_kubeconfig_file() -> None:
    with pytest.raises(ConfigError) as info:
        user_auth(loaded(User(auth_provider={"name": "x"}), user_source="/k/config"), UpstreamTLS())
    assert str(info.value).startswith('/k/config: users[u].user.auth-provider: no Auth Provider found for name "x"')


# -- through Options and kubeconfig files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "kind"),
    [
        ({"exec": EXEC}, "exec"),
        ({"exec": EXEC, "token": "t"}, "static"),  # a token makes client-go skip the plugin
        ({"exec": EXEC, "username": "a", "password": "b"}, "static"),
        ({"exec": EXEC, "tokenFile": "tok"}, "file"),
        ({"exec": EXEC, "client-certificate": "c.crt", "client-key": "c.key"}, "none"),
        ({"token": "t", "tokenFile": "tok"}, "file"),  # the file, re-read, wins over the token
        (
            {
                "token": "t",
                "auth-provider": {"name": "oidc", "config": {"idp-issuer-url": "https://i", "client-id": "c"}},
            },
            "oidc",
        ),
    ],
)
def test_which_credential_is_used(tmp_path: Path, pki: TestPKI, user: dict[str, Any], kind: str) -> None:
    (tmp_path / "tok").write_text("file-token\n")
    (tmp_path / "c.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "c.key").write_bytes(pki.client.key_pem)
    up = build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, user))).upstream
    got = {exec_plugin.ExecPlugin: "exec", credentials.TokenFile: "file", oidc.OIDCProvider: "oidc"}.get(
        type(up.auth), "static" if up.auth_header else "none"
    )
    assert got == kind
    if kind == "file":
        assert up.auth is not None and up.auth.line == b"Authorization: Bearer file-token\r\n"


def test_exec_plugin_over_tls_is_also_the_tls_source(tmp_path: Path) -> None:
    up = build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, {"exec": EXEC}))).upstream
    assert isinstance(up.auth, exec_plugin.ExecPlugin) and up.tls is up.auth
    plain = kubeconfig_with(tmp_path, {"exec": EXEC}, {"server": "http://127.0.0.1:8080"}, name="plain")
    up = build_options(tmp_path, kubeconfig=str(plain)).upstream
    assert up.auth is None and up.tls is None  # over http kubectl sends no credentials


@pytest.mark.parametrize(
    ("name", "first_line"),
    [
        ("gcp", "The gcp auth plugin has been removed."),
        ("azure", "The azure auth plugin has been removed."),
    ],
)
def test_removed_auth_providers_give_kubectls_message(tmp_path: Path, name: str, first_line: str) -> None:
    path = kubeconfig_with(tmp_path, {"auth-provider": {"name": name, "config": {"access-token": "x"}}})
    with pytest.raises(ConfigError) as info:
        build_options(tmp_path, kubeconfig=str(path))
    lines = str(info.value).split("\n")
    assert lines[0] == first_line and len(lines) == 3
    assert lines[2].endswith("for further details")


@pytest.mark.parametrize(
    ("provider", "needle"),
    [
        ({"name": "openstack"}, 'no Auth Provider found for name "openstack"'),
        ({"name": "oidc", "config": {"client-id": "c"}}, "Must provide idp-issuer-url"),
        ({"name": "oidc", "config": {"idp-issuer-url": "https://i"}}, "Must provide client-id"),
        (
            {"name": "oidc", "config": {"idp-issuer-url": "https://i", "client-id": "c", "id-token": "opaque"}},
            "id-token: ID Token is not a valid JWT",
        ),
    ],
)
def test_auth_provider_errors(tmp_path: Path, provider: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, {"auth-provider": provider})))
    assert needle in str(info.value) and "users[u].user.auth-provider" in str(info.value)


def test_empty_or_missing_token_file_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("  \n")
    with pytest.raises(ConfigError, match="read empty token from file"):
        build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, {"tokenFile": "tok"})))
    with pytest.raises(ConfigError, match="cannot read users\\[u\\].user.tokenFile"):
        build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, {"tokenFile": "missing"})))


def test_exec_timeout_from_the_environment(tmp_path: Path) -> None:
    path = str(kubeconfig_with(tmp_path, {"exec": EXEC}))
    with pytest.raises(ConfigError, match="KPROXY_EXEC_PLUGIN_TIMEOUT='soon'"):
        build_options(tmp_path, {"KPROXY_EXEC_PLUGIN_TIMEOUT": "soon"}, kubeconfig=path)
    up = build_options(tmp_path, {"KPROXY_EXEC_PLUGIN_TIMEOUT": "2.5"}, kubeconfig=path).upstream
    assert isinstance(up.auth, exec_plugin.ExecPlugin) and up.auth._timeout == 2.5


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("file-s3cret")
    up = build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, {"tokenFile": "tok"}))).upstream
    assert "file-s3cret" not in repr(up)
    config = exec_credential.parse_config(
        {**EXEC, "args": ["--key=arg-s3cret"], "env": [{"name": "K", "value": "env-s3cret"}]}, "u", "w"
    )
    assert "s3cret" not in repr(config)
