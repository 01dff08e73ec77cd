"""Authentication in the fake, over real HTTP: credentials, client certificates with
groups, anonymous access restricted to the health and version endpoints, and what a
refused request looks like (401, 403, Go's plain-text 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, Rule, TestPKI, UserInfo
from kproxy.testing.auth import public_path

TOKEN = "auth-test-token"


@pytest.fixture
async def fake(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    tokens = {TOKEN: "bob", "jane-token": UserInfo("jane", uid="7", groups=("devs",))}
    async with FakeAPIServer(pki=pki, tokens=tokens, seed=False) as server:
        yield server


def client(api: FakeAPIServer, *, cert: bool = False, **headers: str) -> aiohttp.ClientSession:
    assert api.pki is not None
    ctx = api.pki.client_ssl_context(api.pki.client if cert else None)
    return aiohttp.ClientSession(base_url=api.url, headers=headers, connector=aiohttp.TCPConnector(ssl=ctx))


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/version", True),
        ("/version/", True),
        ("/healthz", True),
        ("/healthz/ping", True),
        ("/livez/etcd", True),
        ("/readyz", True),
        ("/versions", False),
        ("/healthzz", False),
        ("/api", False),
        ("/", False),
        ("/openapi/v3", False),
    ],
)
def test_public_paths(path: str, public: bool) -> None:
    assert public_path(path) is public


async def test_anonymous_reaches_health_and_version_only(fake: FakeAPIServer) -> None:
    async with client(fake) as anonymous:
        for path in ("/version", "/healthz", "/livez/ping", "/readyz?verbose"):
            async with anonymous.get(path) as resp:
                assert resp.status == 200, path
        for path in ("/api", "/apis", "/api/v1/namespaces", "/openapi/v3", "/", "/debug/kproxy/echo"):
            async with anonymous.get(path) as resp:
                assert resp.status == 401, path
                assert await resp.json() == {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                }
    users = [(r.raw_path, r.user, r.groups) for r in fake.requests[:2]]
    assert users == [("/version", "system:anonymous", ("system:unauthenticated",))] + [
        ("/healthz", "system:anonymous", ("system:unauthenticated",))
    ]


async def test_a_wrong_credential_is_refused_even_on_public_paths(fake: FakeAPIServer) -> None:
    async with client(fake, Authorization="Bearer wrong") as wrong:
        for path in ("/version", "/healthz", "/api"):
            async with wrong.get(path) as resp:
                assert resp.status == 401, path
    assert {r.user for r in fake.requests} == {None}


async def test_users_and_their_groups(fake: FakeAPIServer, pki: TestPKI) -> None:
    async with client(fake, Authorization=f"Bearer {TOKEN}") as bob, bob.get("/api") as resp:
        assert resp.status == 200
    async with client(fake, Authorization="Bearer jane-token") as jane, jane.get("/api") as resp:
        assert resp.status == 200
    async with client(fake, cert=True) as cert, cert.get("/api") as resp:
        assert resp.status == 200
    seen = [(r.user, r.groups) for r in fake.requests]
    assert seen == [
        ("bob", ("system:authenticated",)),
        ("jane", ("devs", "system:authenticated")),
        ("kproxy-test-user", ("system:masters", "system:authenticated")),  # the certificate's O
    ]


async def test_impersonation_needs_the_permission(fake: FakeAPIServer) -> None:
    async with client(fake, Authorization=f"Bearer {TOKEN}") as bob:
        async with bob.get("/api/v1/namespaces", headers={"Impersonate-User": "alice"}) as resp:
            assert resp.status == 403
            status = await resp.json()
        assert status["reason"] == "Forbidden" and status["code"] == 403
        assert status["message"] == (
            'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" '
            "at the cluster scope"
        )
        assert status["details"] == {"name": "alice", "kind": "users"}
        fake.authorizer.impersonators.add("bob")
        async with bob.get("/api/v1/namespaces", headers={"Impersonate-User": "alice"}) as resp:
            assert resp.status == 200
        async with bob.get("/api/v1/namespaces", headers={"Impersonate-Group": "ops"}) as resp:
            assert resp.status == 500
            assert resp.headers["Content-Type"].startswith("text/plain")
            assert await resp.text() == (
                'Internal Server Error: "/api/v1/namespaces": requested [{Group  ops    }] '
                "without impersonating a user\n"
            )
    refused, accepted, _ = fake.requests
    assert (refused.user, refused.impersonate_user, refused.effective_user) == ("bob", "alice", None)
    assert (accepted.user, accepted.effective_user, accepted.groups) == ("bob", "alice", ("system:authenticated",))


async def test_rules_decide_what_a_request_may_do(fake: FakeAPIServer) -> None:
    fake.authorizer.rules[:] = [Rule(users=("bob",), verbs=("get", "list"), resources=("namespaces",))]
    async with client(fake, Authorization=f"Bearer {TOKEN}") as bob:
        async with bob.get("/api/v1/namespaces") as resp:
            assert resp.status == 200
        async with bob.get("/api") as resp:
            assert resp.status == 200  # discovery: kube-apiserver's bootstrap rule for everyone signed in
        async with bob.delete("/api/v1/namespaces/default") as resp:
            assert resp.status == 403
            assert (await resp.json())["message"] == (
                'namespaces "default" is forbidden: User "bob" cannot delete resource "namespaces" in API group "" '
                'in the namespace "default"'
            )
        async with bob.get("/debug/kproxy/echo") as resp:
            assert resp.status == 403
            assert (await resp.json())["message"] == 'forbidden: User "bob" cannot get path "/debug/kproxy/echo"'


async def test_anonymous_everywhere_when_asked(pki: TestPKI) -> None:
    async with FakeAPIServer(pki=pki, anonymous=True, seed=False) as api, client(api) as anonymous:
        async with anonymous.get("/api/v1/namespaces") as resp:
            assert resp.status == 200
        async with anonymous.get("/api/v1/namespaces", headers={"Impersonate-User": "x"}) as resp:
            assert resp.status == 403  # anonymous may not impersonate
