"""kproxy.policy.exec_credential: the exec plugin's kubeconfig entry and its output, as
client-go reads them (tables), and the interactive-mode rules."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kproxy.errors import ConfigError
from kproxy.policy import exec_credential
from kproxy.testing import TestPKI

V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"


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
