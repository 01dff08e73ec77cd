"""Configuration reloads through the real kproxy process: the kubeconfig replaced (atomic
rename, in-place write), broken and mended, SIGHUP; new requests go to the new API server
while a watch and an exec session in flight finish on the old one; the CA files of
``--custom-ca-trust-certificates`` and ``--http-proxy-config``'s ``trustedCa`` rotated."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from kproxy.testing import FakeAPIServer, TestPKI
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.integration.test_observability import POD, admin_url, scrape, value
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)


def atomically(path: Path, text: str) -> None:
    """Replace ``path`` the way editors and secret volumes do: a new file renamed over it."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def configmap(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


async def status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as answer:
        await answer.read()
        return answer.status


@pytest.fixture
async def other_api(pki: TestPKI) -> AsyncIterator[FakeAPIServer]:
    server = FakeAPIServer(pki=pki, tokens=("other-token",))
    await server.start()
    yield server
    await server.stop()


async def reloads(base: str, result: str) -> float:
    return value(await scrape(base), "kproxy_config_reloads_total", what="upstream", result=result)


async def test_a_new_kubeconfig_takes_new_requests_while_those_in_flight_finish_on_the_old(
    api: FakeAPIServer, other_api: FakeAPIServer, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(api.kubeconfig(tmp_path, auth="token", token="test-token").read_text())
    api.store.create("configmaps", configmap("only-in-a"), "default")
    other_api.store.create("configmaps", configmap("only-in-b"), "default")
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(config), "--metrics-address", "127.0.0.1:0", "--reject-paths", ""
    )  # fmt: skip
    base = await admin_url(kp)
    url = f"{kp.url}/api/v1/namespaces/default/configmaps"
    # In flight on the first API server: a watch and an exec session.
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    exec_ = await asyncio.create_subprocess_exec(
        "kubectl", "--server", kp.url, "exec", "-i", "-n", "default", POD, "--", "cat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env=kubectl_env(tmp_path),
    )  # fmt: skip
    assert exec_.stdin is not None and exec_.stdout is not None
    try:
        exec_.stdin.write(b"before\n")
        await exec_.stdin.drain()
        assert await asyncio.wait_for(exec_.stdout.readline(), 30) == b"before\n"
        async with aiohttp.ClientSession() as session:  # one keep-alive connection: the fast path's
            for _ in range(2):
                assert await status(session, f"{url}/only-in-a") == 200
            atomically(config, other_api.kubeconfig(tmp_path, auth="token", token="other-token").read_text())

            async def moved() -> bool:
                return await status(session, f"{url}/only-in-b") == 200

            await until(moved, "requests going to the new API server", timeout=10, step=0.1)
            assert await status(session, f"{url}/only-in-a") == 404  # the same connection, the new server
            assert other_api.requests[-1].user == "kproxy-token-user"  # the new file's credential
        # The watch still streams from the first API server ...
        api.store.create("configmaps", configmap("after-the-reload"), "default")

        async def event() -> bool:
            line = await asyncio.wait_for(reader.readline(), 10)
            return b"after-the-reload" in line

        await until(event, "the event on the watch begun before the reload", timeout=20, step=0.1)
        # ... and the exec session still runs there.
        exec_.stdin.write(b"after\n")
        await exec_.stdin.drain()
        assert await asyncio.wait_for(exec_.stdout.readline(), 30) == b"after\n"
        assert await reloads(base, "success") == 1
        assert "reloaded the configuration: new requests go to the API server " + other_api.url in kp.stderr
    finally:
        writer.close()
        if exec_.returncode is None:
            exec_.kill()
        await exec_.wait()


async def test_a_broken_kubeconfig_keeps_the_last_good_one(
    api: FakeAPIServer, other_api: FakeAPIServer, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    good = api.kubeconfig(tmp_path, auth="token", token="test-token").read_text()
    config.write_text(good)
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(config), "--metrics-address", "127.0.0.1:0")
    base = await admin_url(kp)
    async with aiohttp.ClientSession() as session:
        broken = [
            ("clusters: [\n  token: secret-in-a-broken-file\n", f"{config}: invalid YAML"),
            (good.replace("test-token", "test-token\n    bogus: [1"), f"{config}: invalid YAML"),
            (good.replace(f"server: {api.url}", "server: 5"), f"{config}: clusters[fake].cluster.server"),
        ]
        for number, (text, message) in enumerate(broken, 1):
            seen = len(kp.stderr_lines)
            with config.open("w") as f:  # written in place, not renamed
                f.write(text)

            async def failed(n: int = number) -> bool:
                return await reloads(base, "failure") >= n

            await until(failed, f"failed reload {number}", timeout=10, step=0.1)
            assert await status(session, f"{kp.url}/api/v1/namespaces/default/pods") == 200  # the old one serves
            await asyncio.sleep(0.2)
            errors = [line for line in kp.stderr_lines[seen:] if message in line]
            assert len(errors) == 1 and errors[0].startswith("E"), kp.stderr
            assert "Keeping the configuration in force" in errors[0]
        assert "secret-in-a-broken-file" not in kp.stderr and "test-token" not in kp.stderr
        # Mended: taken up.
        with config.open("w") as f:
            f.write(other_api.kubeconfig(tmp_path, auth="token", token="other-token").read_text())

        async def mended() -> bool:
            return await reloads(base, "success") == 1

        await until(mended, "the mended file taken up", timeout=10, step=0.1)
        before = len(other_api.requests)
        assert await status(session, f"{kp.url}/api/v1/namespaces/default/pods") == 200
        assert len(other_api.requests) == before + 1


async def test_sighup_reloads_everything_at_once(
    api: FakeAPIServer, other_api: FakeAPIServer, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(api.kubeconfig(tmp_path, auth="token", token="test-token").read_text())
    ranges = tmp_path / "ranges"
    ranges.write_text("127.0.0.0/8\n")
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(config), "--metrics-address", "127.0.0.1:0",
        "--authorized-ip-ranges-file", str(ranges),
    )  # fmt: skip
    base = await admin_url(kp)
    kp.proc.send_signal(signal.SIGHUP)  # nothing changed: each part is read and put in force again

    async def reloaded() -> bool:
        samples = await scrape(base)
        return value(samples, "kproxy_config_reloads_total", what="authorized_ranges", result="success") == 1 and (
            value(samples, "kproxy_config_reloads_total", what="upstream", result="success") == 1
        )

    await until(reloaded, "both parts reloaded", timeout=10, step=0.1)
    atomically(config, other_api.kubeconfig(tmp_path, auth="token", token="other-token").read_text())
    kp.proc.send_signal(signal.SIGHUP)
    await until(lambda: _at_least(base, 2), "the second reload", timeout=10, step=0.1)
    before = len(other_api.requests)
    async with aiohttp.ClientSession() as session:
        assert await status(session, f"{kp.url}/version") == 200
    assert len(other_api.requests) == before + 1
    assert kp.proc.returncode is None


async def _at_least(base: str, n: int) -> bool:
    return await reloads(base, "success") >= n


async def test_a_rotated_custom_ca_is_trusted_without_a_restart(
    api: FakeAPIServer, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    # No CA in the kubeconfig: the system store plus --custom-ca-trust-certificates decide.
    config = tmp_path / "config"
    kubeconfig = api.kubeconfig(tmp_path, auth="token", token="test-token").read_text()
    config.write_text("\n".join(line for line in kubeconfig.splitlines() if "certificate-authority" not in line))
    assert api.pki is not None
    api_ca = api.pki.ca_pem  # what the rotation brings in
    cas = tmp_path / "custom-ca.pem"
    cas.write_bytes(TestPKI.create().ca_pem)  # not the API server's CA
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(config), "--custom-ca-trust-certificates", str(cas),
        "--metrics-address", "127.0.0.1:0",
    )  # fmt: skip
    await verified_after_rotation(kp, lambda: atomically(cas, api_ca.decode()))


async def test_a_rotated_trusted_ca_in_the_http_proxy_config_is_taken_up(
    api: FakeAPIServer, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    kubeconfig = api.kubeconfig(tmp_path, auth="token", token="test-token").read_text()
    config.write_text("\n".join(line for line in kubeconfig.splitlines() if "certificate-authority" not in line))
    assert api.pki is not None
    api_ca = api.pki.ca_pem  # what the rotation brings in
    proxy_config = tmp_path / "aks-proxy.json"

    def with_ca(pem: bytes) -> str:
        return json.dumps({"noProxy": ["localhost"], "trustedCa": base64.b64encode(pem).decode()})

    proxy_config.write_text(with_ca(TestPKI.create().ca_pem))
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(config), "--http-proxy-config", str(proxy_config),
        "--metrics-address", "127.0.0.1:0",
    )  # fmt: skip
    await verified_after_rotation(kp, lambda: atomically(proxy_config, with_ca(api_ca)))


async def verified_after_rotation(kp: KproxyProcess, rotate: Callable[[], None]) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{kp.url}/version") as answer:
            body = await answer.json()
            assert answer.status == 502 and "certificate signed by unknown authority" in body["message"]
        rotate()

        async def trusted() -> bool:
            return await status(session, f"{kp.url}/version") == 200

        await until(trusted, "the rotated CA trusted", timeout=10, step=0.1)
    assert await reloads(await admin_url(kp), "success") == 1


async def test_watches_over_http2_finish_on_the_retired_lane_which_then_closes(
    pki: TestPKI, start_kproxy: StartKproxy, tmp_path: Path
) -> None:
    first = FakeAPIServer(pki=pki, http2=True)
    second = FakeAPIServer(pki=pki, http2=True)
    await first.start()
    await second.start()
    try:
        assert first.h2 is not None and second.h2 is not None
        config = tmp_path / "config"
        config.write_text(first.kubeconfig(tmp_path, auth="cert").read_text())
        kp = await start_kproxy("--port", "0", "--kubeconfig", str(config))
        watch = f"{kp.url}/api/v1/namespaces/default/configmaps?watch=true"
        async with aiohttp.ClientSession() as session:
            old = await session.get(watch)
            assert old.status == 200
            await until(lambda: first.open_watches() == 1, "the watch on the first API server")
            assert first.h2.connections == 1
            atomically(config, second.kubeconfig(tmp_path, auth="cert").read_text())
            second.store.create("configmaps", configmap("only-in-b"), "default")

            async def moved() -> bool:
                return await status(session, f"{kp.url}/api/v1/namespaces/default/configmaps/only-in-b") == 200

            await until(moved, "requests going to the new API server", timeout=10, step=0.1)
            new = await session.get(watch)
            assert new.status == 200
            await until(lambda: second.open_watches() == 1, "the watch on the second API server")
            assert second.h2.connections == 1  # the new lane
            # The watch in flight still streams from the first API server, on its own connection.
            first.store.create("configmaps", configmap("after-the-reload"), "default")
            lines = [await asyncio.wait_for(old.content.readline(), 10)]
            while b"after-the-reload" not in lines[-1] and len(lines) < 50:  # the initial ADDED events first
                lines.append(await asyncio.wait_for(old.content.readline(), 10))
            assert b"after-the-reload" in lines[-1] and first.h2.open_connections == 1
            old.close()
            # Its last stream ended: the retired lane's connection goes.
            retired = first.h2
            await until(lambda: retired.open_connections == 0 and first.open_watches() == 0, "the retired lane closing")
            assert second.h2.open_connections == 1 and second.open_watches() == 1
            new.close()
    finally:
        await first.stop()
        await second.stop()
