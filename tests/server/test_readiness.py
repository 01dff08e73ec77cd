"""kproxy.server.readiness: kproxy's own probe of the API server, against the fake API
server in this process (and a bare server without /readyz)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from kproxy import Flags, Options
from kproxy.proxy.relay import Relay
from kproxy.server.readiness import Readiness, probe
from kproxy.testing import FakeAPIServer
from kproxy.testing.credential_fakes import write_plugin
from kproxy.upstream.dialer import Dialer
from kproxy.upstream.pool import ConnectionPool
from tests.config.kubeconfig_files import exec_kubeconfig


def relay_for(options: Options) -> Relay:
    return Relay(options.upstream, ConnectionPool(Dialer(options.upstream)))


def relay(config: Path) -> Relay:
    return relay_for(Options.from_flags(Flags(kubeconfig=str(config), port=0)))


async def test_ready_when_the_api_server_answers_kproxys_credential(api: FakeAPIServer, tmp_path: Path) -> None:
    readiness = Readiness(relay(api.kubeconfig(tmp_path, auth="token", token="test-token")), 10)
    assert readiness.state() == (False, "the API server has not been asked yet")
    await readiness.check()
    assert readiness.state() == (True, "ok")
    (asked,) = [r for r in api.requests if r.path == "/readyz"]
    assert asked.user == "kproxy-token-user" and asked.headers["Audit-Id"]
    await api.stop()
    await readiness.check()
    ready, reason = readiness.state()
    assert not ready and reason.startswith(f"cannot reach the API server: cannot connect to the API server {api.url}")
    await api.start()
    await readiness.check()
    assert readiness.state() == (True, "ok")
    readiness.stopping()
    assert readiness.state() == (False, "kproxy is shutting down")


async def test_a_refused_credential_is_not_ready(api: FakeAPIServer, tmp_path: Path) -> None:
    reason = await probe(relay(api.kubeconfig(tmp_path, auth="token", token="nope")))
    assert reason == f"the API server {api.url} refused kproxy's credential (401)"


async def test_no_credential_is_not_ready(api: FakeAPIServer, tmp_path: Path) -> None:
    assert api.pki is not None
    plugin = write_plugin(tmp_path / "bin", exit=1, stderr="token expired, log in again")
    config = exec_kubeconfig(tmp_path, api.url, api.pki.ca_pem, str(plugin.path), "config")
    reason = await probe(relay(config))
    assert reason is not None and reason.startswith("no credential for the API server: ")
    assert "token expired, log in again" in reason
    assert not [r for r in api.requests if r.path == "/readyz"]  # nothing was sent without one


async def test_without_readyz_version_answers(tmp_path: Path) -> None:
    asked: list[str] = []

    async def handle(request: web.BaseRequest) -> web.Response:
        asked.append(request.raw_path)
        if request.raw_path == "/k8s/clusters/c-1/version":
            return web.json_response({"major": "1"})
        return web.Response(status=404, text="404 page not found\n")

    runner = web.ServerRunner(web.Server(handle))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        # A gateway's path in the server URL comes first, as with client-go's own requests.
        options = Options.from_flags(Flags(server=f"http://127.0.0.1:{port}/k8s/clusters/c-1", port=0))
        assert await probe(relay_for(options)) is None
        assert asked == ["/k8s/clusters/c-1/readyz", "/k8s/clusters/c-1/version"]
    finally:
        await runner.cleanup()
