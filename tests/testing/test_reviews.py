"""The self-reviews against real kubectl: ``auth whoami`` (SelfSubjectReview),
``auth can-i`` (SelfSubjectAccessReview) and ``auth can-i --list``
(SelfSubjectRulesReview), directly against the fake and through kproxy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, Rule, TestPKI, UserInfo
from tests.conftest import StartKproxy
from tests.testing.test_fake_apiserver import run_kubectl

ALICE_TOKEN = "alice-token"
BOB_TOKEN = "bob-token"


@pytest.fixture
async def fake(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    tokens = {ALICE_TOKEN: UserInfo("alice", uid="1001", groups=("devs",)), BOB_TOKEN: "bob"}
    rules = [
        Rule(groups=("system:authenticated",), verbs=("get", "list", "watch")),
        Rule(users=("alice",), verbs=("create", "delete"), resources=("configmaps",), namespaces=("default",)),
    ]
    async with FakeAPIServer(pki=pki, tokens=tokens, rules=rules, impersonators=("alice",)) as server:
        yield server


async def test_whoami(fake: FakeAPIServer, tmp_path: Path) -> None:
    config = fake.kubeconfig(tmp_path, token=ALICE_TOKEN)
    home = tmp_path / "home"
    code, out, err = await run_kubectl(config, home, "auth", "whoami")
    assert (code, err) == (0, "")
    assert [line.split(None, 1) for line in out.splitlines()] == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "alice"],
        ["UID", "1001"],
        ["Groups", "[devs system:authenticated]"],
    ]
    # After impersonation: the impersonated user, with its groups and extra.
    args = ("--as", "jane", "--as-group", "ops", "--as-uid", "9")
    code, out, err = await run_kubectl(config, home, "auth", "whoami", "-o", "json", *args)
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {
            "userInfo": {
                "username": "jane",
                "uid": "9",
                "groups": ["ops", "system:authenticated"],
            }
        },
    }
    # bob may not impersonate: the 403 is what kubectl reports.
    code, out, err = await run_kubectl(fake.kubeconfig(tmp_path, token=BOB_TOKEN), home, "auth", "whoami", "--as", "x")
    assert (code, out) == (1, "")
    assert (
        err
        == "error: the selfsubjectreviews API is not enabled in the cluster or you do not have permission to call it\n"
    )


@pytest.mark.parametrize(
    ("token", "args", "answer"),
    [
        (ALICE_TOKEN, ("create", "configmaps"), "yes"),
        (ALICE_TOKEN, ("delete", "configmaps", "-n", "kube-system"), "no"),
        (ALICE_TOKEN, ("delete", "pods"), "no"),
        (ALICE_TOKEN, ("list", "pods", "-A"), "yes"),
        (ALICE_TOKEN, ("impersonate", "users"), "yes"),  # an impersonator
        (BOB_TOKEN, ("impersonate", "users"), "no"),
        (ALICE_TOKEN, ("get", "/healthz"), "yes"),
        (ALICE_TOKEN, ("get", "/debug/kproxy/echo"), "no"),
        (BOB_TOKEN, ("create", "configmaps"), "no"),
        (BOB_TOKEN, ("watch", "pods", "-n", "kube-system"), "yes"),
    ],
)
async def test_can_i(fake: FakeAPIServer, tmp_path: Path, token: str, args: tuple[str, ...], answer: str) -> None:
    config = fake.kubeconfig(tmp_path, token=token)
    code, out, err = await run_kubectl(config, tmp_path / "home", "auth", "can-i", *args)
    assert (out, err, code) == (answer + "\n", "", 0 if answer == "yes" else 1)


async def test_can_i_list(fake: FakeAPIServer, tmp_path: Path) -> None:
    config = fake.kubeconfig(tmp_path, token=ALICE_TOKEN)
    code, out, err = await run_kubectl(config, tmp_path / "home", "auth", "can-i", "--list")
    assert (code, err) == (0, "")
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert ("configmaps.*", "[]", "[]", "[create", "delete]") in rows
    assert ("*.*", "[]", "[]", "[get", "list", "watch", "impersonate]") in rows
    assert ("selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]") in rows
    assert ("[/healthz]", "[]", "[get]") in rows


async def test_an_access_review_asks_exactly_one_thing(fake: FakeAPIServer) -> None:
    assert fake.pki is not None
    connector = aiohttp.TCPConnector(ssl=fake.pki.client_ssl_context())
    headers = {"Authorization": f"Bearer {BOB_TOKEN}"}
    url = fake.url + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    async with aiohttp.ClientSession(connector=connector, headers=headers) as client:
        async with client.post(url, json={"kind": "SelfSubjectAccessReview", "spec": {}}) as resp:
            assert resp.status == 422
            status = await resp.json()
        assert status["reason"] == "Invalid"
        assert status["message"] == (
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
            'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified'
        )
        async with client.get(url) as resp:
            assert resp.status == 405


async def test_whoami_through_kproxy(fake: FakeAPIServer, tmp_path: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(fake.kubeconfig(tmp_path, token=ALICE_TOKEN)))
    home = tmp_path / "home"
    config = tmp_path / "through-kproxy.yaml"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: p, cluster: {server: '" + kp.url + "'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: p, context: {cluster: p, user: u}}]\ncurrent-context: p\n"
    )
    code, out, err = await run_kubectl(config, home, "auth", "whoami")
    assert (code, err) == (0, "")
    assert "Username    alice" in out
    code, out, err = await run_kubectl(config, home, "auth", "can-i", "delete", "configmaps")
    assert (code, out) == (0, "yes\n")
    # kproxy's own --as: the API server checks it against kproxy's user.
    kp_as = await start_kproxy(
        "--port", "0", "--kubeconfig", str(fake.kubeconfig(tmp_path, token=BOB_TOKEN)), "--as", "alice"
    )
    async with aiohttp.ClientSession() as client, client.get(kp_as.url + "/api/v1/namespaces") as resp:
        assert resp.status == 403
        assert (await resp.json())["message"] == (
            'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" '
            "at the cluster scope"
        )
