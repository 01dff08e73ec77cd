"""Every credential kind through the real kproxy process against the fake API server:
exec plugins (real scripts and the real gke-gcloud-auth-plugin), token files and client
certificates replaced while serving, tokens revoked mid-run, OIDC refresh against a fake
issuer, impersonation, in-cluster configuration, relative paths; and a check that no
secret from any of these scenarios shows up in kproxy's output or its error answers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kproxy.testing import TOKEN_USER, FakeAPIServer, TestPKI
from kproxy.testing.credential_fakes import FakeOIDCIssuer, Plugin, make_jwt, write_plugin
from tests.conftest import KproxyProcess, StartKproxy, run_kproxy

ROOT = Path(__file__).resolve().parents[2]
V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
NAMESPACES = "/api/v1/namespaces"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    api: FakeAPIServer,
    directory: Path,
    user: dict[str, Any],
    *,
    cluster: dict[str, Any] | None = None,
    name: str = "kubeconfig",
) -> Path:
    assert api.pki is not None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": cluster or {"server": api.url, "certificate-authority-data": b64(api.pki.ca_pem)},
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "me"}}],
                "users": [{"name": "me", "user": user}],
            },
            sort_keys=False,
        )
    )
    path.chmod(0o600)
    return path


def elsewhere_env() -> dict[str, str]:
    """The environment for a kproxy started in another directory: this checkout first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def exec_user(plugin: Plugin | str, api_version: str = V1, **extra: Any) -> dict[str, Any]:
    command = str(plugin.path) if isinstance(plugin, Plugin) else plugin
    return {"exec": {"apiVersion": api_version, "command": command, "interactiveMode": "Never", **extra}}


async def get(kp: KproxyProcess, path: str = NAMESPACES, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, kp.url + path, **kwargs) as resp:
        body = await resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body.decode(errors="replace")


def seen(api: FakeAPIServer, path: str = NAMESPACES) -> list[tuple[str | None, str | None]]:
    """(Authorization, user) of each request the fake received for ``path``."""
    return [(r.headers.get("Authorization"), r.user) for r in api.requests if r.path == path]


def accept(api: FakeAPIServer, *tokens: str, user: str = TOKEN_USER) -> None:
    for token in tokens:
        api.auth.tokens[token] = user


def revoke(api: FakeAPIServer, *tokens: str) -> None:
    for token in tokens:
        api.auth.tokens.pop(token, None)


# --------------------------------------------------------------------------- exec plugins


async def test_exec_plugin_token_runs_once_for_concurrent_requests(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    assert api.pki is not None
    plugin = write_plugin(tmp_path / "bin", token="exec-tok-{n}", record_env=["FROM_KUBECONFIG"])
    accept(api, "exec-tok-1")
    config = write_kubeconfig(
        api,
        tmp_path,
        exec_user(plugin, env=[{"name": "FROM_KUBECONFIG", "value": "yes"}], provideClusterInfo=True),
        cluster={
            "server": api.url,
            "certificate-authority-data": b64(api.pki.ca_pem),
            "tls-server-name": "localhost",
            "extensions": [{"name": "client.authentication.k8s.io/exec", "extension": {"audience": "fake-cluster"}}],
        },
    )
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
    results = await asyncio.gather(*(get(kp) for _ in range(20)))
    assert {status for status, _ in results} == {200}
    assert plugin.runs == 1
    assert set(seen(api)) == {("Bearer exec-tok-1", TOKEN_USER)}
    recorded = plugin.last_exec_info()
    assert recorded["env"] == {"FROM_KUBECONFIG": "yes"}
    assert recorded["info"] == {
        "kind": "ExecCredential",
        "apiVersion": V1,
        "spec": {
            "cluster": {
                "server": api.url,
                "tls-server-name": "localhost",
                "certificate-authority-data": b64(api.pki.ca_pem),
                "config": {"audience": "fake-cluster"},
            },
            "interactive": False,
        },
    }


async def test_exec_token_expiry_and_revocation(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    plugin = write_plugin(tmp_path / "bin", apiVersion=V1BETA1, token="tok-{n}", expires_in=1)
    accept(api, "tok-1", "tok-2")
    config = write_kubeconfig(api, tmp_path, exec_user(plugin, V1BETA1))  # v1beta1: interactiveMode defaults
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
    assert (await get(kp))[0] == 200 and plugin.runs == 1
    await asyncio.sleep(1.5)  # past expirationTimestamp: the next request runs the plugin first
    assert (await get(kp))[0] == 200 and plugin.runs == 2
    assert [auth for auth, _ in seen(api)] == ["Bearer tok-1", "Bearer tok-2"]

    # Without an expiry the token is kept until the API server refuses it (revoked mid-run):
    # the 401 is not shown to the client; the plugin runs once and the request goes again.
    plugin.configure(apiVersion=V1BETA1, token="tok-{n}")
    accept(api, "tok-3", "tok-4", "tok-5")
    await asyncio.sleep(1.0)
    assert (await get(kp))[0] == 200 and plugin.runs == 3  # tok-3, never expires
    revoke(api, "tok-3")
    api.requests.clear()
    assert (await get(kp))[0] == 200
    assert plugin.runs == 4
    assert seen(api) == [("Bearer tok-3", None), ("Bearer tok-4", TOKEN_USER)]
    # A small body is kept so that the request can be sent again.
    revoke(api, "tok-4")
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-401"}, "data": {"k": "v"}})
    status, answer = await get(
        kp, "/api/v1/namespaces/default/configmaps", "POST", data=body, headers={"Content-Type": "application/json"}
    )
    assert status == 201 and answer["data"] == {"k": "v"} and plugin.runs == 5
    # A second 401 goes to the client as it came, after one refresh only.
    revoke(api, "tok-5", "tok-6")
    api.requests.clear()
    status, answer = await get(kp)
    assert status == 401 and answer["reason"] == "Unauthorized"
    assert plugin.runs == 6 and len(seen(api)) == 2


async def test_exec_upgrade_retried_after_401(api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    plugin = write_plugin(tmp_path / "bin", token="up-{n}")
    accept(api, "up-1")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(write_kubeconfig(api, tmp_path, exec_user(plugin))))
    assert (await get(kp))[0] == 200
    revoke(api, "up-1")
    accept(api, "up-2")
    path = "/api/v1/namespaces/default/pods/no-such-pod/portforward?ports=80"
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": "v4.channel.k8s.io",
    }
    status, answer = await get(kp, path, headers=headers)
    assert status == 404 and answer["reason"] == "NotFound"  # authenticated on the second try
    assert plugin.runs == 2


async def test_clients_own_authorization_is_left_alone(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    plugin = write_plugin(tmp_path / "bin", token="never-used")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(write_kubeconfig(api, tmp_path, exec_user(plugin))))
    assert (await get(kp, headers={"Authorization": "Bearer test-token"}))[0] == 200
    assert (await get(kp, headers={"Authorization": "Bearer wrong"}))[0] == 401
    assert plugin.runs == 0
    assert [auth for auth, _ in seen(api)] == ["Bearer test-token", "Bearer wrong"]


async def test_exec_plugin_client_certificate_rotates(
    api: FakeAPIServer, pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    first, second = pki.issue_client("exec-cert-user"), pki.issue_client("exec-cert-rotated")
    plugin = write_plugin(tmp_path / "bin", cert=first.cert_pem.decode(), key=first.key_pem.decode(), expires_in=1)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(write_kubeconfig(api, tmp_path, exec_user(plugin))))
    for _ in range(3):
        assert (await get(kp))[0] == 200
    plugin.configure(cert=second.cert_pem.decode(), key=second.key_pem.decode(), expires_in=3600)
    await asyncio.sleep(1.5)
    for _ in range(3):
        assert (await get(kp))[0] == 200
    cns = [r.client_cert_cn for r in api.requests if r.path == NAMESPACES]
    assert cns == ["exec-cert-user"] * 3 + ["exec-cert-rotated"] * 3
    assert all(r.headers.get("Authorization") is None for r in api.requests)


async def test_exec_plugin_failures_are_statuses_and_the_next_request_tries_again(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    plugin = write_plugin(tmp_path / "bin", exit=1, stderr="error: you must log in first (run `login`)\n")
    accept(api, "good")
    config = write_kubeconfig(api, tmp_path, exec_user(plugin))
    env = {**os.environ, "KPROXY_EXEC_PLUGIN_TIMEOUT": "1"}
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config), env=env)

    async def failure() -> str:
        status, answer = await get(kp)
        assert status == 502, answer
        assert answer["kind"] == "Status" and answer["code"] == 502
        assert str(plugin.path) in answer["message"]
        return str(answer["message"])

    assert "failed with exit code 1; stderr: error: you must log in first (run `login`)" in await failure()
    plugin.configure(stdout="<html>not a credential</html>")
    assert "decoding stdout: not JSON" in await failure()
    plugin.configure(apiVersion=V1BETA1, token="good")
    assert f"configured to use API version {V1}, plugin returned version {V1BETA1}" in await failure()
    plugin.configure(sleep=20, token="good")
    assert "did not finish within 1s and was stopped" in await failure()
    plugin.configure(token="good")
    assert (await get(kp))[0] == 200
    assert plugin.runs == 5
    assert any("Error while proxying request: getting credentials" in line for line in kp.stderr_lines)


async def test_missing_plugin_shows_its_install_hint(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    hint = "kproxy-test-auth is needed: install it with `pip install kproxy-test-auth`"
    config = write_kubeconfig(api, tmp_path, exec_user("kproxy-test-auth", installHint=hint))
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
    status, answer = await get(kp)
    assert status == 502
    assert answer["message"].startswith("getting credentials: exec: executable kproxy-test-auth not found")
    assert answer["message"].endswith(hint)


GKE_PLUGIN = shutil.which("gke-gcloud-auth-plugin")


@pytest.mark.skipif(GKE_PLUGIN is None, reason="gke-gcloud-auth-plugin is not on PATH")
async def test_real_gke_gcloud_auth_plugin_failure_is_clear(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    # What `gcloud container clusters get-credentials` writes, plus an empty gcloud
    # configuration that keeps it offline: no account, no metadata-server probe (checked
    # with strace: no network connection is attempted), no prompts, no update check.
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    offline = {
        "CLOUDSDK_CONFIG": str(gcloud),
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
    }
    user = {
        "exec": {
            "apiVersion": V1BETA1,
            "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True,
            "installHint": "Install gke-gcloud-auth-plugin for use with kubectl by following "
            "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin",
            "env": [{"name": k, "value": v} for k, v in offline.items()],
        }
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(write_kubeconfig(api, tmp_path, user)), env=env)
    status, answer = await get(kp)
    assert status == 502
    message = answer["message"]
    assert message.startswith("getting credentials: exec: executable gke-gcloud-auth-plugin failed with exit code 1")
    assert "gcloud" in message and "active account" in message
    assert not [r for r in api.requests if r.path == NAMESPACES]  # nothing went out without a credential


# --------------------------------------------------------------------------- files


async def test_token_file_rewritten_while_serving(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1\n")
    accept(api, "file-token-1")
    config = write_kubeconfig(api, tmp_path, {"tokenFile": "token"})  # relative to the kubeconfig
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config), cwd="/", env=elsewhere_env())
    assert (await get(kp))[0] == 200
    # Rotated the way the kubelet does it: a new file renamed over the old one.
    (tmp_path / "token.new").write_text("file-token-2\n")
    os.replace(tmp_path / "token.new", token_file)
    accept(api, "file-token-2")
    revoke(api, "file-token-1")
    assert (await get(kp))[0] == 200
    assert [auth for auth, _ in seen(api)] == ["Bearer file-token-1", "Bearer file-token-1", "Bearer file-token-2"]
    assert (await get(kp))[0] == 200
    assert seen(api)[-1] == ("Bearer file-token-2", TOKEN_USER)


async def test_certificate_pair_replaced_while_serving(
    api: FakeAPIServer, pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    config = api.kubeconfig(tmp_path, auth="cert", embed=False)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
    assert (await get(kp))[0] == 200
    rotated = pki.issue_client("rotated-user")
    for name, data in (("client.key", rotated.key_pem), ("client.crt", rotated.cert_pem)):
        staging = tmp_path / "pki" / f".{name}.new"
        staging.write_bytes(data)
        os.replace(staging, tmp_path / "pki" / name)
    # New connections (several requests at once need more than the idle one) use the new
    # pair; connections made with the old one are then retired.
    results = await asyncio.gather(*(get(kp) for _ in range(6)))
    assert {status for status, _ in results} == {200}
    api.requests.clear()
    for _ in range(5):
        assert (await get(kp))[0] == 200
    assert {r.client_cert_cn for r in api.requests} == {"rotated-user"}


# --------------------------------------------------------------------------- OIDC


def oidc_user(issuer: FakeOIDCIssuer, id_token: str, refresh_token: str) -> dict[str, Any]:
    return {
        "auth-provider": {
            "name": "oidc",
            "config": {
                "idp-issuer-url": issuer.url,
                "client-id": issuer.client_id,
                "client-secret": issuer.client_secret,
                "id-token": id_token,
                "refresh-token": refresh_token,
            },
        }
    }


async def test_oidc_refreshes_an_expired_id_token(
    api: FakeAPIServer, pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    issuer = FakeOIDCIssuer(
        client_secret="oidc-client-secret",
        refresh_token="refresh-1",
        pki=pki,
        on_issue=lambda token: accept(api, token, user="oidc-user"),
    )
    async with issuer:
        user = oidc_user(issuer, make_jwt(time.time() - 60), "refresh-1")
        user["auth-provider"]["config"]["idp-certificate-authority-data"] = b64(pki.ca_pem)
        config = write_kubeconfig(api, tmp_path, user)
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
        results = await asyncio.gather(*(get(kp) for _ in range(5)))
        assert {status for status, _ in results} == {200}
        assert issuer.token_requests == 1
        assert {u for _, u in seen(api)} == {"oidc-user"}
        # Written back to the kubeconfig, as kubectl does: kubectl and kproxy share the login.
        written = yaml.safe_load(config.read_text())["users"][0]["user"]["auth-provider"]["config"]
        assert written["id-token"] == issuer.issued[0] and written["refresh-token"] == "refresh-2"
        # A refused refresh is a clear error.
        issuer.fail_with = (400, {"error": "invalid_grant", "error_description": "Session not active"})
        user = oidc_user(issuer, make_jwt(0), "refresh-2")
        user["auth-provider"]["config"]["idp-certificate-authority-data"] = b64(pki.ca_pem)
        config2 = write_kubeconfig(api, tmp_path / "second", user)
        kp2 = await start_kproxy("--port", "0", "--kubeconfig", str(config2))
        status, answer = await get(kp2)
        assert status == 502
        assert "users[me].user.auth-provider): failed to refresh token" in answer["message"]
        assert "invalid_grant (Session not active)" in answer["message"]


@pytest.mark.parametrize("name", ["gcp", "azure"])
async def test_removed_auth_providers_stop_kproxy_with_kubectls_message(
    api: FakeAPIServer, tmp_path: Path, name: str
) -> None:
    config = write_kubeconfig(api, tmp_path, {"auth-provider": {"name": name, "config": {}}})
    kp = await run_kproxy("--port", "0", "--kubeconfig", str(config), expect_start=False)
    assert await asyncio.wait_for(kp.proc.wait(), 30) == 1
    await kp.stop()
    assert kp.stderr_lines[0] == f"error: The {name} auth plugin has been removed."
    assert kp.stderr_lines[-1].endswith("for further details")


# --------------------------------------------------------------------------- impersonation


async def test_impersonation_from_kubeconfig_flags_and_client(
    api: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    user = {
        "token": "test-token",
        "as": "jane",
        "as-uid": "1001",
        "as-groups": ["dev", "ops"],
        "as-user-extra": {"example.com/reason": ["on call"], "scopes": ["a", "b"]},
    }
    config = write_kubeconfig(api, tmp_path, user)
    api.authorizer.impersonators.add(TOKEN_USER)  # the fake honours impersonation only for those allowed
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
    assert (await get(kp))[0] == 200
    assert (api.requests[-1].user, api.requests[-1].effective_user) == (TOKEN_USER, "jane")
    assert api.requests[-1].groups == ("dev", "ops", "system:authenticated")
    raw = [(n.decode(), v.decode()) for n, v in api.requests[-1].raw_headers if n.lower().startswith(b"impersonate")]
    assert raw == [
        ("Impersonate-User", "jane"),
        ("Impersonate-Uid", "1001"),
        ("Impersonate-Group", "dev"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-Extra-Example.com%2freason", "on call"),
        ("Impersonate-Extra-Scopes", "a"),
        ("Impersonate-Extra-Scopes", "b"),
    ]
    # A client's own Impersonate-User replaces the whole configured set (client-go).
    assert (await get(kp, headers={"Impersonate-User": "bob"}))[0] == 200
    raw = [(n.decode(), v.decode()) for n, v in api.requests[-1].raw_headers if n.lower().startswith(b"impersonate")]
    assert raw == [("Impersonate-User", "bob")]
    # Flags replace their own fields only.
    kp2 = await start_kproxy("--port", "0", "--kubeconfig", str(config), "--as", "root", "--as-group", "admins")
    assert (await get(kp2))[0] == 200
    headers = api.requests[-1].headers
    assert headers.getall("Impersonate-User") == ["root"] and headers.getall("Impersonate-Group") == ["admins"]
    assert headers.get("Impersonate-Uid") == "1001"


# --------------------------------------------------------------------------- in-cluster


async def test_in_cluster_service_account(
    api: FakeAPIServer, pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa-token-1")
    (sa / "ca.crt").write_bytes(pki.ca_pem)
    (sa / "namespace").write_text("default")
    accept(api, "sa-token-1", user="system:serviceaccount:default:kproxy")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(
        KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(api.port), KPROXY_SERVICE_ACCOUNT_DIR=str(sa)
    )
    kp = await start_kproxy("--port", "0", env=env)
    assert (await get(kp))[0] == 200
    # The kubelet rotates the projected token (atomically, through a symlink swap).
    (sa / "token.2").write_text("sa-token-2")
    os.replace(sa / "token.2", sa / "token")
    accept(api, "sa-token-2", user="system:serviceaccount:default:kproxy")
    revoke(api, "sa-token-1")
    assert (await get(kp))[0] == 200
    assert [a for a, _ in seen(api)] == ["Bearer sa-token-1", "Bearer sa-token-1", "Bearer sa-token-2"]


# --------------------------------------------------------------------------- relative paths


async def test_relative_paths_resolve_against_the_kubeconfig_directory(
    api: FakeAPIServer, pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy
) -> None:
    conf = tmp_path / "conf"
    (conf / "certs").mkdir(parents=True)
    (conf / "certs" / "ca.crt").write_bytes(pki.ca_pem)
    (conf / "certs" / "user.crt").write_bytes(pki.client.cert_pem)
    (conf / "certs" / "user.key").write_bytes(pki.client.key_pem)
    write_plugin(conf / "bin", "relative-plugin", token="test-token")
    cluster = {"server": api.url, "certificate-authority": "certs/ca.crt"}
    cert_config = write_kubeconfig(
        api,
        conf,
        {"client-certificate": "certs/user.crt", "client-key": "./certs/../certs/user.key"},
        cluster=cluster,
        name="certs.yaml",
    )
    exec_config = write_kubeconfig(api, conf, exec_user("./bin/relative-plugin"), cluster=cluster, name="exec.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(cert_config), cwd=str(elsewhere), env=elsewhere_env())
    assert (await get(kp))[0] == 200 and api.requests[-1].client_cert_cn == "kproxy-test-user"
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(exec_config), cwd=str(elsewhere), env=elsewhere_env())
    assert (await get(kp))[0] == 200 and api.requests[-1].user == TOKEN_USER


# --------------------------------------------------------------------------- secrets


async def test_no_secret_appears_in_output_or_answers(api: FakeAPIServer, pki: TestPKI, tmp_path: Path) -> None:
    """Every credential kind, with known secrets, at -v=5 and through failures: the secrets
    must not appear in kproxy's stdout, stderr or in any Status it answers with."""
    secrets = {
        "exec-token": "SECRET-exec-token-8c1f",
        "exec-arg": "SECRET-exec-arg-77aa",
        "exec-env": "SECRET-exec-env-19be",
        "file-token": "SECRET-file-token-3d2e",
        "flag-token": "SECRET-flag-token-a4c9",
        "basic-password": "SECRET-basic-password-55f0",
        "oidc-refresh": "SECRET-oidc-refresh-6b1d",
        "oidc-client": "SECRET-oidc-client-0e8f",
    }
    key_pem = pki.issue_client("leak-check")
    key_lines = [line for line in key_pem.key_pem.decode().splitlines() if "-----" not in line]
    processes: list[KproxyProcess] = []
    answers: list[str] = []

    async def run(
        config: Path | None, *extra: str, requests: Iterable[dict[str, Any]] = ({},), env: dict[str, str] | None = None
    ) -> KproxyProcess:
        args = ["--port", "0", "--v=5", *extra]
        if config is not None:
            args += ["--kubeconfig", str(config)]
        kp = await run_kproxy(*args, env=env)
        processes.append(kp)
        for request in requests:
            status, body = await get(kp, **request)
            answers.append(json.dumps(body) if not isinstance(body, str) else body)
        return kp

    async with FakeOIDCIssuer(
        client_secret=secrets["oidc-client"],
        refresh_token=secrets["oidc-refresh"],
        on_issue=lambda token: accept(api, token),
    ) as issuer:
        # exec: success, 401 refresh, bad output quoting the secret, failure with the secret on stdout.
        plugin = write_plugin(tmp_path / "bin", token=secrets["exec-token"] + "-{n}")
        accept(api, secrets["exec-token"] + "-1")
        user = exec_user(
            plugin, args=[f"--key={secrets['exec-arg']}"], env=[{"name": "PLUGIN_SECRET", "value": secrets["exec-env"]}]
        )
        kp = await run(write_kubeconfig(api, tmp_path / "exec", user))
        plugin.configure(stdout=f"token: {secrets['exec-token']}")
        revoke(api, secrets["exec-token"] + "-1")
        answers.append(json.dumps((await get(kp))[1]))
        plugin.configure(
            stdout=json.dumps(
                {"apiVersion": V1BETA1, "kind": "ExecCredential", "status": {"token": secrets["exec-token"]}}
            )
        )
        answers.append(json.dumps((await get(kp))[1]))
        plugin.configure(stdout=secrets["exec-token"], exit=2)
        answers.append(json.dumps((await get(kp))[1]))
        # exec client certificate
        cert_plugin = write_plugin(
            tmp_path / "bin", "cert-plugin", cert=key_pem.cert_pem.decode(), key=key_pem.key_pem.decode()
        )
        await run(write_kubeconfig(api, tmp_path / "exec-cert", exec_user(cert_plugin)))
        # token file, rotated to a refused token
        (tmp_path / "token").write_text(secrets["file-token"])
        kp = await run(write_kubeconfig(api, tmp_path, {"tokenFile": str(tmp_path / "token")}))
        (tmp_path / "token").write_text(secrets["file-token"] + "-rotated")
        answers.append(json.dumps((await get(kp))[1]))
        # --token and basic auth (refused)
        await run(write_kubeconfig(api, tmp_path / "flag", {}), "--token", secrets["flag-token"])
        await run(write_kubeconfig(api, tmp_path / "basic", {"username": "u", "password": secrets["basic-password"]}))
        # OIDC: a refresh that works, then one that is refused
        await run(write_kubeconfig(api, tmp_path / "oidc", oidc_user(issuer, make_jwt(0), secrets["oidc-refresh"])))
        issuer.fail_with = (400, {"error": "invalid_grant"})
        await run(write_kubeconfig(api, tmp_path / "oidc-2", oidc_user(issuer, make_jwt(0), "refresh-2")))
        issued = list(issuer.issued)

    outputs = []
    for kp in processes:
        await kp.stop(signal.SIGTERM)
        assert kp.proc.stdout is not None
        outputs.append((await kp.proc.stdout.read()).decode(errors="replace"))
        outputs.append(kp.stderr)
    text = "\n".join(outputs + answers)
    assert "getting credentials" in text and "failed to refresh token" in text  # the failures happened
    for name, secret in {**secrets, **{f"id-token-{i}": t for i, t in enumerate(issued)}}.items():
        assert secret not in text, f"{name} leaked"
    for line in key_lines:
        assert line not in text, "the client key leaked"
