"""The fake API server against real clients: kubectl 1.32 over TLS, aiohttp, raw sockets.

kubectl is the judge of faithfulness: it runs against the fake with token, client
certificate and basic-auth kubeconfigs, and must succeed without a word on stderr.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kproxy.testing import TOKEN_USER, ApiError, FakeAPIServer, TestPKI, debug_pattern
from kproxy.testing.certs import CLIENT_CN

TOKEN = "fake-test-token"
POD = "nginx-7c5ddbdf54-2xkqw"
EXEC = f"/api/v1/namespaces/default/pods/{POD}/exec?command=sh&stdin=true"
KubectlResult = tuple[int, str, str]
Kubectl = Callable[..., Awaitable[KubectlResult]]


@pytest.fixture
async def fake(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    async with FakeAPIServer(pki=pki, tokens=[TOKEN], basic_auth=[("alice", "wonderland")]) as server:
        yield server


async def run_kubectl(kubeconfig: Path, home: Path, *args: str, stdin: bytes | None = None) -> KubectlResult:
    # Only PATH and a private HOME: no KUBECONFIG, no proxies, caches under tmp_path.
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def kubectl_for(kubeconfig: Path, home: Path) -> Kubectl:
    async def kubectl(*args: str) -> KubectlResult:
        return await run_kubectl(kubeconfig, home, *args)

    return kubectl


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def session(api: FakeAPIServer, *, token: str | None = TOKEN, cert: bool = False) -> aiohttp.ClientSession:
    assert api.pki is not None
    ctx = api.pki.client_ssl_context(api.pki.client if cert else None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return aiohttp.ClientSession(
        base_url=api.url,
        headers=headers,
        connector=aiohttp.TCPConnector(ssl=ctx),
        auto_decompress=False,
    )


# -- kubectl ---------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["token", "cert"])
async def test_kubectl_session(fake: FakeAPIServer, tmp_path: Path, auth: str) -> None:
    kubectl = kubectl_for(fake.kubeconfig(tmp_path, auth=auth), tmp_path / "home")  # type: ignore[arg-type]

    code, out, err = await kubectl("get", "ns")
    assert (code, err) == (0, "")
    rows = table(out)
    assert rows[0] == ["NAME", "STATUS", "AGE"]
    assert {r[0] for r in rows[1:]} == {"default", "kube-system", "kube-public"}
    assert all(r[1] == "Active" for r in rows[1:])

    code, out, err = await kubectl("get", "pods", "-n", "default")
    assert (code, err) == (0, "")
    rows = table(out)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:4] for r in rows[1:]] == [
        ["nginx-7c5ddbdf54-2xkqw", "1/1", "Running", "0"],
        ["nginx-7c5ddbdf54-8hvzn", "1/1", "Running", "0"],
    ]

    code, out, err = await kubectl("get", "pod", POD, "-o", "json")
    assert (code, err) == (0, "")
    pod = json.loads(out)
    assert (pod["kind"], pod["metadata"]["name"], pod["status"]["phase"]) == ("Pod", POD, "Running")

    code, out, err = await kubectl("create", "configmap", "x", "--from-literal=a=b")
    assert (code, out, err) == (0, "configmap/x created\n", "")
    assert fake.store.get("configmaps", "x", "default")["data"] == {"a": "b"}

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\n"
        "spec:\n  containers:\n  - name: web\n    image: nginx:1.27\n"
    )
    code, out, err = await kubectl("create", "-f", str(manifest))
    assert (code, out, err) == (0, "pod/web created\n", "")
    assert fake.store.get("pods", "web", "default")["spec"]["containers"][0]["image"] == "nginx:1.27"

    code, out, err = await kubectl("delete", "configmap", "x")
    assert (code, out, err) == (0, 'configmap "x" deleted\n', "")
    with pytest.raises(ApiError):
        fake.store.get("configmaps", "x", "default")

    code, out, err = await kubectl("get", "svc", "-A")
    assert (code, err) == (0, "")
    rows = table(out)
    assert rows[0] == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert ["kube-system", "kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP"] in [
        r[:6] for r in rows
    ]
    assert ["default", "kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"] in [r[:6] for r in rows]

    kubectl_requests = [r for r in fake.requests if r.headers.get("User-Agent", "").startswith("kubectl/")]
    assert kubectl_requests
    if auth == "cert":
        assert {(r.client_cert_cn, r.user) for r in kubectl_requests} == {(CLIENT_CN, CLIENT_CN)}
        assert all("Authorization" not in r.headers for r in kubectl_requests)
    else:
        assert {(r.headers["Authorization"], r.user) for r in kubectl_requests} == {(f"Bearer {TOKEN}", TOKEN_USER)}


async def test_kubectl_more_commands(fake: FakeAPIServer, tmp_path: Path) -> None:
    kubectl = kubectl_for(fake.kubeconfig(tmp_path, auth="cert", embed=False), tmp_path / "home")
    for args, expected in [
        (("create", "namespace", "team-a"), "namespace/team-a created\n"),  # protobuf body
        (("create", "service", "clusterip", "web", "--tcp=80:8080"), "service/web created\n"),  # protobuf
        (("run", "r1", "--image=busybox"), "pod/r1 created\n"),
        (("label", "pod", "r1", "tier=db"), "pod/r1 labeled\n"),  # merge patch
        (("annotate", "ns", "team-a", "note=x"), "namespace/team-a annotated\n"),
        (("cordon", "demo-node"), "node/demo-node cordoned\n"),  # strategic merge patch
        (("delete", "ns", "team-a"), 'namespace "team-a" deleted\n'),
    ]:
        code, out, err = await kubectl(*args)
        assert (code, out, err) == (0, expected, ""), args
    assert fake.store.get("services", "web", "default")["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    code, out, err = await kubectl("get", "pods", "-l", "tier=db", "-o", "name")
    assert (code, out, err) == (0, "pod/r1\n", "")
    code, out, err = await kubectl("logs", POD, "--tail=2")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"nginx default/{POD}: log line 8", f"nginx default/{POD}: log line 9"]
    code, out, err = await kubectl("get", "nodes")
    assert (code, err) == (0, "")
    assert table(out)[1][:3] == ["demo-node", "Ready,SchedulingDisabled", "control-plane"]
    code, out, err = await kubectl("get", "pod", "nope")
    assert code == 1
    assert err == 'Error from server (NotFound): pods "nope" not found\n'
    code, out, err = await kubectl("version", "-o", "json")
    assert code == 0
    assert json.loads(out)["serverVersion"]["gitVersion"].startswith("v1.32.")


async def test_kubectl_basic_auth(fake: FakeAPIServer, tmp_path: Path) -> None:
    code, out, err = await run_kubectl(
        fake.kubeconfig(tmp_path, auth="basic"), tmp_path / "home", "get", "ns", "-o", "name"
    )
    assert (code, err) == (0, "")
    assert "namespace/default" in out.splitlines()
    assert any(r.user == "alice" for r in fake.requests)


async def test_kubectl_wrong_token_is_unauthorized(fake: FakeAPIServer, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path, token="wrong")
    # Discovery reads the raw body, so kubectl words this 401 itself (as against a real server)...
    code, out, err = await run_kubectl(kubeconfig, tmp_path / "home", "get", "ns")
    assert code == 1
    assert err.endswith(
        "error: You must be logged in to the server (the server has asked for the client to provide credentials)\n"
    )
    # ...while a plain request decodes the Status and shows its reason.
    code, out, err = await run_kubectl(kubeconfig, tmp_path / "home", "get", "--raw", "/api/v1/namespaces")
    assert (code, out, err) == (1, "", "error: You must be logged in to the server (Unauthorized)\n")
    assert fake.requests and all(r.user is None for r in fake.requests)


async def test_kubectl_watch_prints_changes(fake: FakeAPIServer, tmp_path: Path) -> None:
    kubeconfig = fake.kubeconfig(tmp_path)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        "get",
        "configmaps",
        "-w",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        header = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert header.split() == [b"NAME", b"DATA", b"AGE"]
        for _ in range(2):  # demo-config, kube-root-ca.crt
            await asyncio.wait_for(proc.stdout.readline(), 30)
        fake.store.create("configmaps", {"metadata": {"name": "watched"}, "data": {"k": "v"}}, "default")
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.split()[:2] == [b"watched", b"1"]
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    assert err == b""


# -- HTTP semantics --------------------------------------------------------------------


async def test_unauthorized_status(fake: FakeAPIServer) -> None:
    for token in (None, "nope"):
        async with session(fake, token=token) as client, client.get("/api/v1/namespaces") as resp:
            assert resp.status == 401
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.read() == (
                b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                b'"message":"Unauthorized","reason":"Unauthorized","code":401}\n'
            )
    assert [r.user for r in fake.requests] == [None, None]
    assert fake.requests[1].headers["Authorization"] == "Bearer nope"


async def test_untrusted_client_certificate_fails_handshake(fake: FakeAPIServer) -> None:
    assert fake.pki is not None
    stranger = TestPKI.create()
    ctx = fake.pki.client_ssl_context(stranger.client)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as client:
        with pytest.raises(aiohttp.ClientError):
            async with client.get(fake.url + "/version") as resp:
                await resp.read()


async def test_client_cert_wins_and_impersonation_is_recorded(fake: FakeAPIServer) -> None:
    client = session(fake, token="ignored-when-cert", cert=True)
    async with client, client.get("/api/v1/namespaces/default", headers={"Impersonate-User": "bob"}) as resp:
        assert resp.status == 200
    (request,) = fake.requests
    assert (request.client_cert_cn, request.user, request.impersonate_user) == (CLIENT_CN, CLIENT_CN, "bob")


async def test_plain_http_and_anonymous(tmp_path: Path) -> None:
    async with FakeAPIServer(anonymous=True, seed=False) as api, aiohttp.ClientSession() as client:
        assert api.url.startswith("http://127.0.0.1:")
        async with client.get(api.url + "/api/v1/namespaces") as resp:
            assert resp.status == 200
            assert (await resp.json())["items"] == []
        async with client.get(api.url + "/api", headers={"Authorization": "Bearer bad"}) as resp:
            assert resp.status == 401  # a wrong credential is not anonymous
        assert [r.user for r in api.requests] == ["system:anonymous", None]
        code, out, err = await run_kubectl(api.kubeconfig(tmp_path, auth="none"), tmp_path / "home", "get", "ns")
        assert (code, out, err) == (0, "", "No resources found\n")


async def test_discovery_documents(fake: FakeAPIServer) -> None:
    async with session(fake) as client:
        async with client.get("/version") as resp:
            version = await resp.json()
        assert (version["major"], version["minor"]) == ("1", "32")
        async with client.get("/api", headers={"Accept": "application/json"}) as resp:
            assert (await resp.json())["versions"] == ["v1"]
        async with client.get("/apis") as resp:
            assert (await resp.json())["kind"] == "APIGroupList"
        aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        async with client.get("/api", headers={"Accept": aggregated}) as resp:
            assert (
                resp.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )
            assert (await resp.json())["items"][0]["versions"][0]["version"] == "v1"
        async with client.get("/api/v1") as resp:
            listed = {r["name"]: r for r in (await resp.json())["resources"]}
        for name in (
            "pods/exec",
            "pods/attach",
            "pods/portforward",
            "pods/log",
            "services/proxy",
            "pods/proxy",
            "nodes/proxy",
        ):
            assert name in listed
        assert listed["pods"]["shortNames"] == ["po"] and listed["pods"]["namespaced"] is True
        assert listed["nodes"]["namespaced"] is False and listed["namespaces"]["shortNames"] == ["ns"]
        assert listed["pods/exec"]["verbs"] == ["create", "get"]
        for path in ("/healthz", "/livez", "/readyz"):
            async with client.get(path) as resp:
                assert (resp.status, await resp.text()) == (200, "ok")


async def test_crud_errors_are_status_objects(fake: FakeAPIServer) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "1"}}
    async with session(fake) as client:
        async with client.get("/api/v1/namespaces/default/pods/missing") as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": 'pods "missing" not found',
                "reason": "NotFound",
                "details": {"name": "missing", "kind": "pods"},
                "code": 404,
            }
        async with client.post("/api/v1/namespaces/default/configmaps", json=cm) as resp:
            assert resp.status == 201
            created = await resp.json()
            assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
        async with client.post("/api/v1/namespaces/default/configmaps", json=cm) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (409, "AlreadyExists")
        async with client.post("/api/v1/namespaces/nope/configmaps", json=cm) as resp:
            assert (resp.status, (await resp.json())["message"]) == (404, 'namespaces "nope" not found')
        async with client.post(
            "/api/v1/namespaces/default/configmaps", data=b"{not json", headers={"Content-Type": "application/json"}
        ) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (400, "BadRequest")
        stale = {**created, "data": {"a": "2"}, "metadata": {**created["metadata"], "resourceVersion": "1"}}
        async with client.put("/api/v1/namespaces/default/configmaps/c1", json=stale) as resp:
            assert (resp.status, (await resp.json())["reason"]) == (409, "Conflict")
        async with client.put("/api/v1/namespaces/default/configmaps/c1", json={**created, "data": {"a": "2"}}) as resp:
            assert resp.status == 200
        async with client.patch(
            "/api/v1/namespaces/default/configmaps/c1",
            data=b'{"data":{"b":"3"}}',
            headers={"Content-Type": "application/merge-patch+json"},
        ) as resp:
            assert (await resp.json())["data"] == {"a": "2", "b": "3"}
        async with client.delete("/api/v1/namespaces/default/configmaps/c1") as resp:
            assert (resp.status, (await resp.json())["metadata"]["name"]) == (200, "c1")
        async with client.delete("/api/v1/namespaces/default") as resp:
            assert (resp.status, (await resp.json())["reason"]) == (403, "Forbidden")


async def test_lists_selectors_and_tables(fake: FakeAPIServer) -> None:
    async with session(fake) as client:
        async with client.get("/api/v1/pods") as resp:
            pods = await resp.json()
        assert pods["kind"] == "PodList" and int(pods["metadata"]["resourceVersion"]) > 0
        assert {p["metadata"]["namespace"] for p in pods["items"]} == {"default", "kube-system"}
        async with client.get("/api/v1/pods", params={"labelSelector": "app=nginx"}) as resp:
            assert len((await resp.json())["items"]) == 2
        async with client.get(
            "/api/v1/namespaces/default/pods", params={"fieldSelector": f"metadata.name={POD}"}
        ) as resp:
            assert [p["metadata"]["name"] for p in (await resp.json())["items"]] == [POD]
        async with client.get(
            "/api/v1/services", params={"labelSelector": "kubernetes.io/cluster-service=true"}
        ) as resp:
            assert [s["metadata"]["name"] for s in (await resp.json())["items"]] == ["kube-dns"]
        async with client.get("/api/v1/namespaces", params={"limit": "2"}) as resp:
            page = await resp.json()
        assert len(page["items"]) == 2 and page["metadata"]["remainingItemCount"] == 1
        async with client.get(
            "/api/v1/namespaces", params={"limit": "2", "continue": page["metadata"]["continue"]}
        ) as resp:
            assert [n["metadata"]["name"] for n in (await resp.json())["items"]] == ["kube-system"]
        accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        async with client.get("/api/v1/namespaces/default/configmaps", headers={"Accept": accept}) as resp:
            result = await resp.json()
        assert result["kind"] == "Table"
        assert [c["name"] for c in result["columnDefinitions"]] == ["Name", "Data", "Age"]
        assert [row["cells"][:2] for row in result["rows"]] == [["demo-config", 2], ["kube-root-ca.crt", 1]]


async def test_large_lists_are_gzipped_when_accepted(fake: FakeAPIServer) -> None:
    for i in range(200):
        fake.store.create("configmaps", {"metadata": {"name": f"big-{i:03}"}, "data": {"v": "x" * 1024}}, "default")
    async with session(fake) as client:
        path = "/api/v1/namespaces/default/configmaps"
        async with client.get(path, headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert len(json.loads(gzip.decompress(await resp.read()))["items"]) == 202
        async with client.get(path, headers={"Accept-Encoding": "identity"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert len(json.loads(await resp.read())["items"]) == 202
        async with client.get(path, params={"limit": "1"}, headers={"Accept-Encoding": "gzip"}) as resp:
            assert "Content-Encoding" not in resp.headers  # small: never compressed


# -- watches and logs ------------------------------------------------------------------


async def test_watch_lockstep_one_chunk_per_event(fake: FakeAPIServer) -> None:
    rv = fake.store.resource_version()
    path = f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
    async with session(fake) as client, client.get(path) as resp:
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        chunks = resp.content.iter_chunks()

        async def next_event() -> dict[str, Any]:
            data, end_of_chunk = await asyncio.wait_for(chunks.__anext__(), 5)
            assert end_of_chunk and data.endswith(b"\n") and data.count(b"\n") == 1
            event: dict[str, Any] = json.loads(data)
            return event

        for i in range(3):
            # Only after event i arrived is object i+1 created: nothing may be buffered.
            async with client.post(
                "/api/v1/namespaces/default/configmaps", json={"metadata": {"name": f"cm-{i}"}}
            ) as created:
                assert created.status == 201
            event = await next_event()
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", f"cm-{i}")
            assert event["object"]["kind"] == "ConfigMap"
        fake.store.patch("configmaps", "cm-1", {"data": {"k": "v"}}, "default")
        event = await next_event()
        assert (event["type"], event["object"]["data"]) == ("MODIFIED", {"k": "v"})
        fake.store.delete("configmaps", "cm-0", "default")
        event = await next_event()
        assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "cm-0")


async def test_watch_initial_events_selectors_and_timeout(fake: FakeAPIServer) -> None:
    async with session(fake) as client:
        async with client.get("/api/v1/pods?watch=1&labelSelector=app%3Dnginx&timeoutSeconds=1") as resp:
            lines = [json.loads(line) async for line in resp.content]  # ends by itself after 1 s
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [
            ("ADDED", "nginx-7c5ddbdf54-2xkqw"),
            ("ADDED", "nginx-7c5ddbdf54-8hvzn"),
        ]
        assert fake.open_watches() == 0


async def test_log_and_follow(fake: FakeAPIServer) -> None:
    async with session(fake) as client:
        async with client.get(f"/api/v1/namespaces/default/pods/{POD}/log?tailLines=1") as resp:
            assert (resp.status, await resp.text()) == (200, f"nginx default/{POD}: log line 9\n")
        async with client.get(f"/api/v1/namespaces/default/pods/{POD}/log?follow=true&tailLines=0") as resp:
            for i in range(10, 13):
                line = await asyncio.wait_for(resp.content.readline(), 5)
                assert line == f"nginx default/{POD}: log line {i}\n".encode()


# -- upgrades --------------------------------------------------------------------------


async def open_raw(api: FakeAPIServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert api.pki is not None
    ctx: ssl.SSLContext = api.pki.client_ssl_context()
    return await asyncio.open_connection("127.0.0.1", api.port, ssl=ctx, server_hostname="localhost")


async def upgrade(
    api: FakeAPIServer, path: str, headers: str
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_raw(api)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n{headers}\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head, reader, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


@pytest.mark.parametrize("kind", ["websocket", "spdy"])
async def test_upgrade_then_echo(fake: FakeAPIServer, kind: str) -> None:
    key = base64.b64encode(b"0123456789abcdef").decode()
    if kind == "websocket":
        headers = (
            f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n"
        )
    else:
        headers = (
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
        )
    head, reader, writer = await upgrade(fake, EXEC, headers)
    try:
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        fields = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
        assert fields["connection"] == "Upgrade"
        if kind == "websocket":
            accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            assert fields["upgrade"] == "websocket"
            assert fields["sec-websocket-accept"] == accept.decode()
            assert fields["sec-websocket-protocol"] == "v5.channel.k8s.io"
        else:
            assert fields["upgrade"] == "SPDY/3.1"
            assert fields["x-stream-protocol-version"] == "v4.channel.k8s.io"
        # Bytes that look like HTTP must come back as bytes, not be parsed as a request.
        for payload in (b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x01binary", bytes(range(256)) * 1024):
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    finally:
        await close(writer)


async def test_upgrade_refusals(fake: FakeAPIServer) -> None:
    missing = "/api/v1/namespaces/default/pods/nope/portforward"
    head, _, writer = await upgrade(fake, missing, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n")
    await close(writer)
    assert head.startswith(b"HTTP/1.1 404 ")
    async with session(fake) as client, client.post(EXEC) as resp:
        assert (resp.status, (await resp.json())["message"]) == (400, "Upgrade request required")


async def test_stop_ends_open_streams(pki: TestPKI) -> None:
    api = FakeAPIServer(pki=pki, tokens=[TOKEN])
    await api.start()
    async with session(api) as client:
        watch = await client.get("/api/v1/namespaces/default/configmaps?watch=1")
        log = await client.get(f"/api/v1/namespaces/default/pods/{POD}/log?follow=1")
        head, reader, writer = await upgrade(api, EXEC, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        await asyncio.wait_for(api.stop(), 10)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        await close(writer)
        for resp in (watch, log):
            await asyncio.wait_for(resp.read(), 5)  # complete: the stream ended cleanly
            resp.release()


async def test_stop_cuts_a_tls_connection_whose_client_stays_silent(pki: TestPKI) -> None:
    # A graceful TLS close waits for the peer's close_notify (30 s in asyncio); a client
    # that never answers must not keep the fake's socket open past stop(), or a test's
    # event loop ends with the transport still open.
    api = FakeAPIServer(pki=pki, tokens=[TOKEN])
    await api.start()
    raw = socket.create_connection(("127.0.0.1", api.port))
    # Blocking calls run in a thread: the fake serves on this test's event loop.
    tls = await asyncio.to_thread(pki.client_ssl_context().wrap_socket, raw, server_hostname="127.0.0.1")
    try:
        request = f"GET /version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        await asyncio.to_thread(tls.sendall, request.encode())
        assert (await asyncio.to_thread(tls.recv, 65536)).startswith(b"HTTP/1.1 200 ")
        await asyncio.wait_for(api.stop(), 10)

        def closed_by_server() -> bool:
            # Read under TLS: whatever the server sends last (close_notify or nothing), then
            # the end of the TCP stream. A socket left open would time out here instead.
            silent = socket.socket(fileno=os.dup(tls.fileno()))
            silent.settimeout(5)
            try:
                while silent.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except TimeoutError:
                return False
            finally:
                silent.close()
            return True

        assert await asyncio.to_thread(closed_by_server), "the fake's socket stayed open after stop()"
    finally:
        tls.close()


# -- debug endpoints -------------------------------------------------------------------


async def test_debug_echo_and_status(fake: FakeAPIServer) -> None:
    async with session(fake) as client:
        async with client.post(
            "/debug/kproxy/echo?a=%20b&&c", data=b"hello", headers={"X-One": "1", "x-two": "2"}
        ) as resp:
            echo = await resp.json()
        assert (echo["method"], echo["path"], echo["query"]) == ("POST", "/debug/kproxy/echo", "a=%20b&&c")
        names = [name for name, _ in echo["headers"]]
        assert names.index("X-One") < names.index("x-two")
        assert ["Authorization", f"Bearer {TOKEN}"] in echo["headers"]
        assert (echo["body_length"], echo["body_sha256"]) == (5, hashlib.sha256(b"hello").hexdigest())
        async with client.get("/debug/kproxy/status?code=418") as resp:
            assert (resp.status, (await resp.json())["code"]) == (418, 418)
        async with client.get("/debug/kproxy/redirect", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "/debug/kproxy/echo")
        async with client.get("/debug/kproxy/slow-headers?delay=0.05") as resp:
            assert await resp.text() == "ok\n"


async def test_debug_bytes_upload_chunks_gzip(fake: FakeAPIServer) -> None:
    size = 3 * 65536 + 17
    async with session(fake) as client:
        async with client.get(f"/debug/kproxy/bytes?size={size}") as resp:
            assert resp.headers["Content-Length"] == str(size)
            assert await resp.read() == debug_pattern(size)
        async with client.get(f"/debug/kproxy/bytes?size={size}&chunked=1") as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
            assert await resp.read() == debug_pattern(size)

        async def body() -> AsyncIterator[bytes]:
            for i in range(64):
                yield bytes([i]) * (1 << 20)

        async with client.post("/debug/kproxy/upload", data=body()) as resp:
            result = await resp.json()
        expected = hashlib.sha256(b"".join(bytes([i]) * (1 << 20) for i in range(64))).hexdigest()
        assert result == {"length": 64 << 20, "sha256": expected}
        async with client.get("/debug/kproxy/chunks?n=3&interval=0.01") as resp:
            got = [data async for data, _ in resp.content.iter_chunks()]
        assert b"".join(got) == b"chunk 0\nchunk 1\nchunk 2\n"
        async with client.get("/debug/kproxy/gzip?size=5000", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await resp.read()) == debug_pattern(5000)
        async with client.get("/debug/kproxy/gzip?size=5000", headers={"Accept-Encoding": "identity"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == debug_pattern(5000)
