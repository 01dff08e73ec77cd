"""Per-client identity through the real process, over TLS: client certificates (401 without
a valid one, the CA reloaded), the three --client-identity modes as the fake API server
sees them (impersonation honoured only with RBAC, anonymous requests refused), and real
clients: kubectl auth whoami, exec over WebSocket and port-forward over SPDY, a watch; the
README's openssl commands and ClusterRole, run and applied as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest
import yaml

from kproxy.testing import TOKEN_USER, FakeAPIServer, TestPKI
from kproxy.testing.authorization import Rule, default_rules
from tests.certificates import DAY, issue, name, now
from tests.conftest import ROOT, KproxyProcess, StartKproxy, kubectl_env
from tests.integration.sharing import (
    Team,
    curl_json,
    https,
    kubectl,
    kubectl_tls,
    make_team,
    start_tls,
)
from tests.integration.test_forwarding import curl
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

ECHO = "/debug/kproxy/echo"
POD = "nginx-7c5ddbdf54-2xkqw"


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return make_team(tmp_path)


async def start_mode(
    start_kproxy: StartKproxy, kubeconfig: Path, team: Team, mode: str, *args: str, ca: Path | None = None
) -> KproxyProcess:
    return await start_tls(
        start_kproxy, kubeconfig, team, "--client-ca-file", str(ca or team.ca), "--client-identity", mode, *args
    )


def echoed(body: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(name.lower(), value) for name, value in body["headers"]]


# -- client certificates ------------------------------------------------------------------


async def test_clients_without_a_valid_certificate_get_401_and_nothing_is_forwarded(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    kp = await start_mode(start_kproxy, kubeconfig, team, "proxy")
    stranger = TestPKI.create()
    cases = [
        ([], "client certificate required"),
        (team.user("stranger", stranger.client).curl(), "client certificate verification failed: "
         "unable to get local issuer certificate"),
        (team.user("nameless", issue(team.pki, name(None, ("dev",)))).curl(),
         "client certificate has no common name (CN): kproxy takes the user name from it"),
        (team.user("old", issue(team.pki, name("old"), not_before=now() - 9 * DAY, not_after=now() - DAY)).curl(),
         "client certificate verification failed: certificate has expired"),
        (team.user("web", issue(team.pki, name("web"), server=True)).curl(),
         "client certificate verification failed: unsuitable certificate purpose"),
    ]  # fmt: skip
    before = len(api.requests)
    for extra, message in cases:
        for path in ("/api/v1/namespaces/default/pods", "/version", ECHO):
            status, body = await curl_json(team, kp, path, *extra)
            assert status == 401, (extra, body)
            assert body == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "Unauthorized",
                "code": 401,
            }
    assert len(api.requests) == before
    alice = team.issue("alice", ("dev",))
    status, body = await curl_json(team, kp, "/api/v1/namespaces/default/pods", *alice.curl())
    assert status == 200 and body["kind"] == "PodList"
    assert api.requests[-1].user == TOKEN_USER  # proxy mode: kproxy's own identity upstream
    assert "BEGIN" not in kp.stderr


async def test_the_client_ca_is_reloaded(
    kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    ca = tmp_path / "clients-ca.crt"
    ca.write_bytes(team.pki.ca_pem)
    kp = await start_mode(start_kproxy, kubeconfig, team, "proxy", ca=ca)
    alice = team.issue("alice")
    assert (await curl_json(team, kp, "/version", *alice.curl()))[0] == 200
    # The CA rotates (atomic rename): members of the old CA are refused, the new CA's let in.
    new_ca = TestPKI.create()
    bob = team.user("bob", new_ca.issue_client("bob"))
    staged = tmp_path / "clients-ca.crt.new"
    staged.write_bytes(new_ca.ca_pem)
    os.replace(staged, ca)

    async def rotated() -> bool:
        return (await curl_json(team, kp, "/version", *bob.curl()))[0] == 200

    await until(rotated, "the new CA's member let in", timeout=5, step=0.1)
    status, body = await curl_json(team, kp, "/version", *alice.curl())
    assert status == 401 and body["message"].startswith("client certificate verification failed")


# -- the modes ----------------------------------------------------------------------------


async def test_impersonate_kubectl_auth_whoami_prints_the_certificates_user(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    api.authorizer.impersonators.add(TOKEN_USER)
    kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate")
    alice = team.issue("alice", ("dev", "oncall"))
    home = tmp_path / "kubectl"
    code, out, err = await kubectl(home, *kubectl_tls(kp, team, alice), "auth", "whoami")
    assert code == 0, err
    assert re.search(r"Username\s+alice\n", out) and re.search(r"Groups\s+\[dev oncall system:authenticated\]", out)
    last = api.requests[-1]
    assert (last.user, last.impersonate_user, last.effective_user) == (TOKEN_USER, "alice", "alice")
    code, out, err = await kubectl(home, *kubectl_tls(kp, team, alice), "get", "pods", "-o", "name")
    assert code == 0 and f"pod/{POD}" in out, err
    # Without a certificate: the 401, on which kubectl asks for a password, as it does
    # when kube-apiserver answers 401 to a client with no credential configured.
    before = len(api.requests)
    code, out, err = await kubectl(home, *kubectl_tls(kp, team, None), "get", "pods")
    assert code == 1 and "Please enter Username" in out + err
    assert len(api.requests) == before
    await asyncio.sleep(0.2)
    assert "client identity: impersonate" in kp.stderr


async def test_impersonate_drops_what_the_client_claims(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    api.authorizer.impersonators.add(TOKEN_USER)
    kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate")
    alice = team.issue("alice", ("dev",))
    status, body = await curl_json(
        team, kp, ECHO, *alice.curl(),
        "-H", "Authorization: Bearer stolen-token",
        "-H", "Impersonate-User: admin",
        "-H", "Impersonate-Group: system:masters",
        "-H", "Impersonate-Extra-Scopes: all",
    )  # fmt: skip
    assert status == 200
    headers = echoed(body)
    assert [h for h in headers if h[0] == "authorization" or h[0].startswith("impersonate-")] == [
        ("authorization", "Bearer test-token"),
        ("impersonate-user", "alice"),
        ("impersonate-group", "dev"),
    ]
    assert (api.requests[-1].effective_user, api.requests[-1].groups) == ("alice", ("dev", "system:authenticated"))


async def test_impersonation_needs_rbac(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate")  # kproxy's user may not impersonate
    status, body = await curl_json(team, kp, "/api/v1/namespaces/default/pods", *team.issue("alice").curl())
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        f'users "alice" is forbidden: User "{TOKEN_USER}" cannot impersonate resource "users" in API group "" '
        "at the cluster scope"
    )


def readme_cluster_role() -> list[Rule]:
    """The README's ClusterRole, as the fake API server's RBAC rules for kproxy's user."""
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: ClusterRole\n" in b)
    role = next(doc for doc in yaml.safe_load_all(block) if doc["kind"] == "ClusterRole")
    return [
        Rule(
            users=(TOKEN_USER,),
            verbs=tuple(rule["verbs"]),
            api_groups=tuple(rule["apiGroups"]),
            resources=tuple(rule["resources"]),
            resource_names=tuple(rule.get("resourceNames", ())),
        )
        for rule in role["rules"]
    ]


async def test_the_readmes_cluster_role_is_enough(
    pki: TestPKI, tmp_path: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    async with FakeAPIServer(
        pki=pki, tokens=("test-token",), rules=[*default_rules(False), *readme_cluster_role()]
    ) as api:
        kubeconfig = api.kubeconfig(tmp_path, auth="token")
        kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate")
        alice = team.issue("alice", ("dev", "oncall"))
        code, out, err = await kubectl(
            tmp_path / "kubectl", *kubectl_tls(kp, team, alice), "auth", "whoami", "-o", "json"
        )
        assert code == 0, err
        assert json.loads(out)["status"]["userInfo"] == {
            "username": "alice",
            "groups": ["dev", "oncall", "system:authenticated"],
        }
        # Bounded as the README suggests, with resourceNames: others are refused.
        api.authorizer.rules[-len(readme_cluster_role()) :] = [
            Rule(users=(TOKEN_USER,), verbs=("impersonate",), api_groups=("",), resources=("users",),
                 resource_names=("alice",)),
            Rule(users=(TOKEN_USER,), verbs=("impersonate",), api_groups=("",), resources=("groups",),
                 resource_names=("dev", "oncall")),
        ]  # fmt: skip
        status, _ = await curl_json(team, kp, "/api/v1/namespaces", *alice.curl())
        assert status == 200
        mallory = team.issue("mallory", ("dev",))
        status, body = await curl_json(team, kp, "/api/v1/namespaces", *mallory.curl())
        assert status == 403 and 'users "mallory" is forbidden' in body["message"]
        root = team.issue("alice", ("system:masters",))
        status, body = await curl_json(team, kp, "/api/v1/namespaces", *root.curl())
        assert status == 403 and 'groups "system:masters" is forbidden' in body["message"]
        await kp.stop()


async def test_passthrough_adds_nothing(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    kp = await start_tls(start_kproxy, kubeconfig, team, "--client-identity", "passthrough")
    # No credential of its own: anonymous upstream, which the API server refuses but for
    # the public endpoints.
    assert (await curl_json(team, kp, "/version"))[0] == 200
    status, body = await curl_json(team, kp, "/api/v1/namespaces/default/pods")
    assert status == 401 and body["reason"] == "Unauthorized"
    assert (api.requests[-1].user, api.requests[-1].headers.get("Authorization")) == (None, None)
    # A client's own token passes, untouched.
    status, body = await curl_json(team, kp, ECHO, "-H", "Authorization: Bearer test-token")
    assert status == 200 and [h for h in echoed(body) if h[0] == "authorization"] == [
        ("authorization", "Bearer test-token")
    ]
    code, out, err = await kubectl(
        tmp_path / "kubectl", *kubectl_tls(kp, team, None), "--token", "test-token", "auth", "whoami"
    )
    assert code == 0 and re.search(rf"Username\s+{TOKEN_USER}\n", out), err
    await asyncio.sleep(0.2)
    assert "client identity: passthrough (kproxy adds no credential" in kp.stderr


async def test_proxy_mode_with_client_certificates_keeps_kubectls_rules(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    api.auth.tokens["other-token"] = "other-user"
    kp = await start_mode(start_kproxy, kubeconfig, team, "proxy")
    alice = team.issue("alice")
    await curl_json(team, kp, "/api/v1/namespaces", *alice.curl())
    assert api.requests[-1].user == TOKEN_USER
    await curl_json(team, kp, "/api/v1/namespaces", *alice.curl(), "-H", "Authorization: Bearer other-token")
    assert api.requests[-1].user == "other-user"  # the client's own credential wins, as in kubectl proxy


# -- real clients, upgrades and watches over TLS ------------------------------------------


async def test_exec_websocket_and_port_forward_spdy_in_impersonate_mode(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    api.authorizer.impersonators.add(TOKEN_USER)
    kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate", "--reject-paths=")
    alice = team.issue("alice", ("dev",))
    home = tmp_path / "kubectl"
    tls = kubectl_tls(kp, team, alice)

    code, out, err = await kubectl_forced(home, "websocket", *tls, "exec", "-i", POD, "--", "cat", stdin=b"over tls\n")
    assert (code, out, err) == (0, b"over tls\n", "")
    [session] = [s for s in api.runtime.sessions if s.kind == "exec"]
    assert (session.transport, session.protocol) == ("websocket", "v5.channel.k8s.io")
    [upgrade] = [r for r in api.requests if r.path.endswith("/exec")]
    assert (upgrade.user, upgrade.effective_user, upgrade.headers["Impersonate-User"]) == (TOKEN_USER, "alice", "alice")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    backend = await asyncio.start_server(echo, "127.0.0.1", 0)
    api.runtime.forward_port("default", POD, 8080, "127.0.0.1", backend.sockets[0].getsockname()[1])
    proc = await start_forced(home, "spdy", *tls, "port-forward", POD, ":8080")
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        local = int(line.split()[2].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"through kproxy's TLS port\n")
        assert await asyncio.wait_for(reader.readline(), 10) == b"through kproxy's TLS port\n"
        writer.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        backend.close()
        await backend.wait_closed()
    forwards = [s for s in api.runtime.sessions if s.kind == "portforward"]
    assert [(s.transport, s.protocol) for s in forwards] == [("spdy", "portforward.k8s.io")]
    [upgrade] = [r for r in api.requests if r.path.endswith("/portforward")]
    assert (upgrade.effective_user, upgrade.headers["Impersonate-Group"]) == ("alice", "dev")


async def test_a_watch_over_tls_with_a_client_certificate(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    api.authorizer.impersonators.add(TOKEN_USER)
    kp = await start_mode(start_kproxy, kubeconfig, team, "impersonate")
    alice = team.issue("alice")
    ctx = team.client_context()
    ctx.load_cert_chain(alice.cert, alice.key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        url = https(kp, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0")
        async with session.get(url) as watch:
            assert watch.status == 200
            created = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "over-tls"}, "data": {"a": "b"}}
            async with session.post(https(kp, "/api/v1/namespaces/default/configmaps"), json=created) as made:
                assert made.status == 201
            while True:
                event = json.loads(await asyncio.wait_for(watch.content.readline(), 10))
                if event["object"]["metadata"]["name"] == "over-tls":
                    break
            assert event["type"] == "ADDED"
    assert {r.effective_user for r in api.requests if "configmaps" in r.path} == {"alice"}


async def test_the_readmes_openssl_commands_make_a_working_team(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    api.authorizer.impersonators.add(TOKEN_USER)
    text = (ROOT / "README.md").read_text()
    section = text.split("### Making a CA and certificates", 1)[1]
    commands = re.search(r"```sh\n(.*?)```", section, re.S)
    assert commands is not None
    # The README's example address is the jump host's; here kproxy is on loopback.
    script = commands.group(1).replace("IP:10.0.0.5", "IP:127.0.0.1")
    work = tmp_path / "readme"
    work.mkdir()
    bash = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=work,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, made = await asyncio.wait_for(bash.communicate(), 60)
    assert bash.returncode == 0, made.decode()
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig),
        "--tls-cert-file", str(work / "kproxy.crt"), "--tls-private-key-file", str(work / "kproxy.key"),
        "--client-ca-file", str(work / "team-ca.crt"), "--client-identity", "impersonate", "--accept-hosts", ".*",
    )  # fmt: skip
    # kubectl, as the README's kubeconfig has it (the address replaced as above).
    home = tmp_path / "kubectl"
    kubeconfig_alice = str(tmp_path / "alice.kubeconfig")
    for args in (
        ["config", "set-cluster", "team", "--server", https(kp), "--certificate-authority", "team-ca.crt",
         "--embed-certs"],
        ["config", "set-credentials", "alice", "--client-certificate", "alice.crt", "--client-key", "alice.key",
         "--embed-certs"],
        ["config", "set-context", "team", "--cluster", "team", "--user", "alice"],
    ):  # fmt: skip
        code, _, err = await kubectl(home, "--kubeconfig", kubeconfig_alice, *args, cwd=work)
        assert code == 0, err
    code, out, err = await kubectl(home, "--kubeconfig", kubeconfig_alice, "--context", "team", "auth", "whoami")
    assert code == 0, err
    assert re.search(r"Username\s+alice\n", out) and re.search(r"Groups\s+\[dev oncall system:authenticated\]", out)
    # And by the DNS name in kproxy's certificate.
    code, out, err = await curl(
        "-s", "--cacert", str(work / "team-ca.crt"), "--resolve", f"jump.example.com:{kp.port}:127.0.0.1",
        "--cert", str(work / "alice.crt"), "--key", str(work / "alice.key"),
        f"https://jump.example.com:{kp.port}/version",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["major"] == "1", err


# -- kubectl with a transport forced (as tests/integration/test_exec.py does) -------------


def forced_env(home: Path, transport: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = kubectl_env(home)
    forced = "true" if transport == "websocket" else "false"
    env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = forced
    env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = forced
    return env


async def start_forced(home: Path, transport: str, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=forced_env(home, transport),
    )


async def kubectl_forced(home: Path, transport: str, *args: str, stdin: bytes) -> tuple[int, bytes, str]:
    proc = await start_forced(home, transport, *args, stdin=True)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode(errors="replace")
