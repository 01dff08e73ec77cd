"""kproxy.proxy.fast against the fake API server, through an embedded ProxyServer.

A request like one forwarded before is sent and answered on callbacks (FastPath._start);
what it cannot finish goes back to the ordinary path. The answers must be the ordinary
path's, byte for byte where the upstream's are, and failures must be retried exactly as
the ordinary path (Go's transport) retries them.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kproxy import Flags, Options, ProxyServer
from kproxy.http import Request
from kproxy.proxy.fast import FastPath, Forward
from kproxy.testing import TOKEN_USER, FakeAPIServer, TestPKI
from kproxy.testing.credential_fakes import write_plugin
from tests.config.kubeconfig_files import exec_kubeconfig
from tests.waiting import until

VARYING = {"Date", "Audit-Id"}


@pytest.fixture
def fast_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Targets of the requests the fast path took."""
    taken: list[str] = []
    start = FastPath._start

    def spy(self: FastPath, request: Request, forward: Forward) -> bool:
        took = start(self, request, forward)
        if took:
            taken.append(forward.target.decode())
        return took

    monkeypatch.setattr(FastPath, "_start", spy)
    return taken


@pytest.fixture
async def proxy(api: FakeAPIServer, tmp_path: Path) -> AsyncIterator[ProxyServer]:
    kubeconfig = api.kubeconfig(tmp_path, auth="cert")
    options = Options.from_flags(Flags(kubeconfig=str(kubeconfig), port=0, reject_paths=""))
    async with ProxyServer(options) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def fetch(session: aiohttp.ClientSession, method: str, url: str) -> tuple[int, dict[str, str], bytes]:
    async with session.request(method, url) as resp:
        body = await resp.read()
        return resp.status, {k: v for k, v in resp.headers.items() if k not in VARYING}, body


async def test_a_repeated_request_takes_the_fast_path_with_the_same_answer(
    proxy: ProxyServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/api/v1/namespaces/default/pods"
    first = await fetch(session, "GET", url)
    assert fast_taken == []  # the first one makes the verdict the fast path remembers
    second = await fetch(session, "GET", url)
    assert fast_taken == ["/api/v1/namespaces/default/pods"]
    assert first == second and first[0] == 200 and json.loads(first[2])["kind"] == "PodList"
    assert "Server" not in second[1] or second[1]["Server"].startswith("Python")  # the fake's own


async def test_head_on_the_fast_path_keeps_the_length(
    proxy: ProxyServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/version"
    _, _, body = await fetch(session, "GET", url)
    for _ in range(2):
        status, headers, head_body = await fetch(session, "HEAD", url)
        assert (status, head_body, headers["Content-Length"]) == (200, b"", str(len(body)))
    assert fast_taken == ["/version"]


async def test_an_answer_that_streams_continues_on_the_ordinary_path(
    proxy: ProxyServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/debug/kproxy/chunks?n=3&interval=0.05"
    for _ in range(2):
        status, headers, body = await fetch(session, "GET", url)
        assert (status, body) == (200, b"chunk 0\nchunk 1\nchunk 2\n")
        assert headers["Transfer-Encoding"] == "chunked"
    assert len(fast_taken) == 1


async def test_a_client_leaving_a_streamed_fast_answer_releases_the_upstream(
    proxy: ProxyServer, api: FakeAPIServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true"
    before = api.open_watches()
    for _ in range(2):
        await fetch(session, "GET", f"{proxy.url}/version")  # the fast path needs an idle connection
        async with session.get(url) as resp:
            assert resp.status == 200
            await until(lambda: api.open_watches() == before + 1, "the watch on the API server", timeout=5.0)
        await until(lambda: api.open_watches() == before, "the watch to end", timeout=5.0)
    assert len(fast_taken) == 1


async def test_a_connection_the_server_closed_is_retried_as_on_the_ordinary_path(
    proxy: ProxyServer, api: FakeAPIServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    # Go retries a replayable request that failed on a reused connection before any
    # answer; the fast path must send it exactly as often as the ordinary path does.
    url = f"{proxy.url}/debug/kproxy/hangup"
    counts = []
    for _ in range(2):
        await fetch(session, "GET", f"{proxy.url}/version")  # an idle pooled connection to reuse
        before = hangups(api)
        status, _, body = await fetch(session, "GET", url)
        assert status == 502 and json.loads(body)["kind"] == "Status"
        counts.append(hangups(api) - before)
    assert fast_taken[-1:] == ["/debug/kproxy/hangup"]
    assert counts == [2, 2]


async def test_a_malformed_answer_is_not_asked_for_twice(
    proxy: ProxyServer, api: FakeAPIServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/debug/kproxy/garbage"
    for _ in range(2):
        await fetch(session, "GET", f"{proxy.url}/version")
        before = len([r for r in api.requests if r.raw_path.endswith("/garbage")])
        status, _, body = await fetch(session, "GET", url)
        assert status == 502 and "malformed" in json.loads(body)["message"]
        assert len([r for r in api.requests if r.raw_path.endswith("/garbage")]) == before + 1
    assert fast_taken[-1:] == ["/debug/kproxy/garbage"]


async def test_a_refused_credential_on_the_fast_path_is_refreshed_once(
    api: FakeAPIServer, tmp_path: Path, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    assert api.pki is not None
    plugin = write_plugin(tmp_path / "bin", token="fast-{n}")
    api.auth.tokens["fast-1"] = "exec-user"
    kubeconfig = exec_kubeconfig(tmp_path, api.url, api.pki.ca_pem, str(plugin.path), "kubeconfig")
    async with ProxyServer(Options.from_flags(Flags(kubeconfig=str(kubeconfig), port=0))) as proxy:
        url = f"{proxy.url}/api/v1/namespaces"
        assert (await fetch(session, "GET", url))[0] == 200
        api.auth.tokens.pop("fast-1")
        api.auth.tokens["fast-2"] = "exec-user"
        api.requests.clear()
        assert (await fetch(session, "GET", url))[0] == 200  # 401 seen by kproxy only
        assert [r.headers.get("Authorization") for r in api.requests] == ["Bearer fast-1", "Bearer fast-2"]
        api.auth.tokens.pop("fast-2")  # and a second refusal reaches the client, after one refresh
        api.requests.clear()
        status, _, body = await fetch(session, "GET", url)
        assert status == 401 and json.loads(body)["reason"] == "Unauthorized"
        assert [r.headers.get("Authorization") for r in api.requests] == ["Bearer fast-2", "Bearer fast-3"]
    assert fast_taken == ["/api/v1/namespaces"] * 2 and plugin.runs == 3


def hangups(api: FakeAPIServer) -> int:
    return len([r for r in api.requests if r.raw_path.endswith("/hangup")])


async def test_pipelined_requests_on_the_fast_path_are_answered_in_order(
    proxy: ProxyServer, fast_taken: list[str]
) -> None:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        get = b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n"
        writer.write(get)
        await reader.readuntil(b"}")  # the first makes the verdict the fast path remembers
        writer.write(
            get
            + b"GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n"
            + get
            + b"HEAD /version HTTP/1.1\r\nHost: localhost\r\n\r\n"
            + b"GET /version HTTP/1.0\r\nHost: localhost\r\n\r\n"
        )
        data = await asyncio.wait_for(reader.read(-1), 10)  # the HTTP/1.0 answer ends the connection
    finally:
        writer.close()
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 5
    kinds = [b"APIVersions" in a or (b'"major"' in a and "version") or "head" for a in answers]
    assert kinds == ["version", True, "version", "head", "version"]
    assert b"Connection: close" in answers[-1] and all(b"Connection: close" not in a for a in answers[:-1])
    assert fast_taken[:1] == ["/version"]  # then /api, new, goes to the task, which serves the rest


async def test_a_request_head_built_before_is_reused_only_for_the_same_request(
    proxy: ProxyServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    url = f"{proxy.url}/debug/kproxy/echo"
    seen = []
    for value in ("1", "1", "2", "2", "1"):
        async with session.get(url, headers={"X-A": value}) as resp:
            echo = await resp.json()
            seen.append([v for n, v in echo["headers"] if n.lower() == "x-a"])
    assert seen == [["1"], ["1"], ["2"], ["2"], ["1"]]
    assert len(fast_taken) == 4


# -- over kproxy's TLS listener, in each --client-identity mode -----------------------------


def shared_with_alice(api: FakeAPIServer, tmp_path: Path, mode: str, **flags: str) -> tuple[Options, ssl.SSLContext]:
    """kproxy's TLS listener with a client CA and ``--client-identity mode`` (``flags``
    on top), and the TLS context of alice (groups: dev), whose certificate that CA issued."""
    api.authorizer.impersonators.add(TOKEN_USER)
    team = TestPKI.create()
    files = team.write(tmp_path / "team")
    options = Options.from_flags(
        Flags(
            kubeconfig=str(api.kubeconfig(tmp_path, auth="token")),
            port=0,
            tls_cert_file=str(files["server.crt"]),
            tls_private_key_file=str(files["server.key"]),
            client_ca_file=str(files["ca.crt"]),
            client_identity=mode,
            **flags,  # type: ignore[arg-type]
        )
    )
    return options, team.client_ssl_context(team.issue_client("alice", ("dev",)))


@pytest.mark.parametrize("mode", ["proxy", "impersonate", "passthrough"])
async def test_the_fast_path_over_tls_in_each_identity_mode(
    api: FakeAPIServer, tmp_path: Path, fast_taken: list[str], mode: str
) -> None:
    options, ctx = shared_with_alice(api, tmp_path, mode)
    headers = {"Authorization": "Bearer test-token"} if mode == "passthrough" else {}
    async with (
        ProxyServer(options) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1), headers=headers) as session,
    ):
        assert server.url.startswith("https://")
        url = f"{server.url}/debug/kproxy/echo"
        answers = [await fetch(session, "GET", url) for _ in range(3)]
    assert fast_taken == ["/debug/kproxy/echo", "/debug/kproxy/echo"]  # all but the first
    assert all(a[0] == 200 for a in answers)
    heads = [[(n.lower(), v) for n, v in json.loads(a[2])["headers"]] for a in answers]
    # The memoised head goes out again, each time with an Audit-Id of its own.
    same = [[h for h in head if h[0] != "audit-id"] for head in heads]
    assert same[1] == same[2] and len({dict(head)["audit-id"] for head in heads}) == 3
    sent = heads[2]
    auth = [h for h in sent if h[0] == "authorization" or h[0].startswith("impersonate-")]
    impersonation = [("impersonate-user", "alice"), ("impersonate-group", "dev")]
    assert auth == [("authorization", "Bearer test-token"), *(impersonation if mode == "impersonate" else [])]
    assert {r.effective_user for r in api.requests[-3:]} == {"alice" if mode == "impersonate" else TOKEN_USER}


async def test_the_access_log_names_the_certificates_user_on_both_paths(
    api: FakeAPIServer, tmp_path: Path, fast_taken: list[str]
) -> None:
    log = tmp_path / "access.log"
    options, ctx = shared_with_alice(api, tmp_path, "impersonate", access_log="json", access_log_file=str(log))
    async with (
        ProxyServer(options) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1)) as session,
    ):
        url = f"{server.url}/api/v1/namespaces/default/configmaps"
        for _ in range(3):
            assert (await fetch(session, "GET", url))[0] == 200
        async with session.post(url, json={"metadata": {"name": "c1"}, "data": {}}) as resp:
            assert resp.status == 201
    assert fast_taken == ["/api/v1/namespaces/default/configmaps"] * 2
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["method"], e["user"]) for e in lines] == [("GET", "alice")] * 3 + [("POST", "alice")]


@pytest.fixture
async def logged(api: FakeAPIServer, tmp_path: Path) -> AsyncIterator[tuple[ProxyServer, Path]]:
    kubeconfig = api.kubeconfig(tmp_path, auth="cert")
    log = tmp_path / "access.log"
    flags = Flags(kubeconfig=str(kubeconfig), port=0, access_log="json", access_log_file=str(log))
    async with ProxyServer(Options.from_flags(flags)) as server:
        yield server, log


def entries(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_with_the_access_log_on_the_fast_path_stays_on_and_logs_every_request(
    logged: tuple[ProxyServer, Path], api: FakeAPIServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    proxy, log = logged
    url = f"{proxy.url}/api/v1/namespaces/default/configmaps"
    for _ in range(4):
        assert (await fetch(session, "GET", url))[0] == 200
    assert fast_taken == ["/api/v1/namespaces/default/configmaps"] * 3
    lines = entries(log)
    assert [(e["verb"], e["status"], e["termination"]) for e in lines] == [("list", 200, "complete")] * 4
    sent = [r.headers["Audit-Id"] for r in api.requests if r.path == "/api/v1/namespaces/default/configmaps"]
    assert [e["audit_id"] for e in lines] == sent and len(set(sent)) == 4  # one each, the one sent


async def test_what_the_fast_path_hands_back_is_logged_once(
    logged: tuple[ProxyServer, Path], api: FakeAPIServer, session: aiohttp.ClientSession, fast_taken: list[str]
) -> None:
    proxy, log = logged
    streamed = f"{proxy.url}/debug/kproxy/chunks?n=2&interval=0.01"
    for _ in range(2):
        assert (await fetch(session, "GET", streamed))[0] == 200
    await fetch(session, "GET", f"{proxy.url}/version")
    for _ in range(2):
        await fetch(session, "GET", f"{proxy.url}/version")  # an idle pooled connection to reuse
        assert (await fetch(session, "GET", f"{proxy.url}/debug/kproxy/hangup"))[0] == 502
    assert "/debug/kproxy/chunks?n=2&interval=0.01" in fast_taken and "/debug/kproxy/hangup" in fast_taken
    watch = f"{proxy.url}/api/v1/namespaces/default/configmaps?watch=true"
    for _ in range(2):
        await fetch(session, "GET", f"{proxy.url}/version")
        async with session.get(watch) as resp:
            assert resp.status == 200
            await until(lambda: api.open_watches() == 1, "the watch on the API server", timeout=5.0)
        await until(lambda: api.open_watches() == 0, "the watch to end", timeout=5.0)
    await until(lambda: len(entries(log)) == 11, lambda: entries(log), timeout=5.0)
    lines = entries(log)
    chunks = [e for e in lines if str(e["path"]).endswith("/chunks")]
    assert [(e["status"], e["bytes_out"], e["termination"]) for e in chunks] == [(200, 16, "complete")] * 2
    hung = [e for e in lines if str(e["path"]).endswith("/hangup")]
    assert [(e["status"], e["termination"]) for e in hung] == [(502, "upstream_reset")] * 2
    watches = [e for e in lines if e["verb"] == "watch"]
    assert [(e["status"], e["termination"]) for e in watches] == [(200, "client_gone")] * 2
