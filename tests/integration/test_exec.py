"""exec, attach, cp and port-forward through the real kproxy process, with real kubectl.

kubectl 1.32 has two streaming transports and silently falls back from the first to the
second when an upgrade fails, which would hide a broken WebSocket path. So every kubectl
test runs twice, each transport forced (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS`` /
``KUBECTL_PORT_FORWARD_WEBSOCKETS``), and asserts from the fake API server's records
which transport and subprotocol actually carried the session:

* ``websocket``: ``v5.channel.k8s.io`` for exec/attach, SPDY tunneled in WebSocket
  (``SPDY/3.1+portforward.k8s.io``) for port-forward;
* ``spdy``: ``Upgrade: SPDY/3.1`` (kubectl offers ``v5.channel.k8s.io`` first there too)
  and ``portforward.k8s.io``.

Exec and attach need ``--reject-paths=`` (the default filter rejects them, as kubectl
proxy's does; tested too). The failure cases use raw sockets where kubectl would stop
before the upgrade (it GETs the pod first). After each failure, the test checks that
nothing leaked: no upgraded session left open in the fake, kproxy's socket count back
to where it was, no task left behind in this process (where the fake runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kproxy.testing import TOKEN_USER, FakeAPIServer, RecordedRequest, debug_pattern
from kproxy.testing.upgrade import GARBAGE
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

POD = "nginx-7c5ddbdf54-2xkqw"
CONTAINER = "nginx"
TRANSPORTS = ("websocket", "spdy")
PROTOCOLS = {
    ("exec", "websocket"): "v5.channel.k8s.io",
    ("exec", "spdy"): "v5.channel.k8s.io",
    ("attach", "websocket"): "v5.channel.k8s.io",
    ("attach", "spdy"): "v5.channel.k8s.io",
    ("portforward", "websocket"): "SPDY/3.1+portforward.k8s.io",
    ("portforward", "spdy"): "portforward.k8s.io",
}
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE_HEADERS = {
    "websocket": (
        "GET",
        f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n",
    ),
    "spdy": ("POST", "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"),
}


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Kubectl:
    """kubectl against one kproxy, with one streaming transport forced."""

    server: str
    home: Path
    transport: str

    @property
    def env(self) -> dict[str, str]:
        env = kubectl_env(self.home)
        forced = "true" if self.transport == "websocket" else "false"
        env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = forced
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = forced
        return env

    async def start(self, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "kubectl",
            "--server",
            self.server,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )

    async def run(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> tuple[int, bytes, str]:
        proc = await self.start(*args, stdin=stdin is not None)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out, err.decode(errors="replace")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def exec_proxy(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy) -> KproxyProcess:
    """kproxy that lets exec and attach through (``--reject-paths=``)."""
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths=")


@pytest.fixture
def kubectl(exec_proxy: KproxyProcess, tmp_path: Path, transport: str) -> Kubectl:
    home = tmp_path / "kubectl-home"
    home.mkdir(exist_ok=True)
    return Kubectl(exec_proxy.url, home, transport)


def assert_sessions(api: FakeAPIServer, transport: str, kind: str, count: int) -> None:
    """``count`` sessions of ``kind`` were served, all over ``transport``, and none is open."""
    sessions = [s for s in api.runtime.sessions if s.kind == kind]
    assert len(sessions) == count, sessions
    for session in sessions:
        assert (session.transport, session.protocol) == (transport, PROTOCOLS[(kind, transport)]), session
    # No session over the other transport either (a fallback would show up here).
    assert {s.transport for s in api.runtime.sessions} <= {transport}


def upgrade_requests(api: FakeAPIServer, kind: str) -> list[RecordedRequest]:
    return [r for r in api.requests if r.path.endswith("/" + kind)]


def assert_upgrade_request(request: RecordedRequest, transport: str) -> None:
    """The upgrade reached the API server as kubectl sent it, with kproxy's credentials."""
    assert request.user == TOKEN_USER
    assert request.headers["Authorization"] == "Bearer test-token"
    assert "upgrade" in request.headers["Connection"].lower()
    if transport == "websocket":
        assert request.method == "GET"
        assert request.headers["Upgrade"].lower() == "websocket"
        assert request.headers["Sec-WebSocket-Version"] == "13"
        assert "Sec-WebSocket-Key" in request.headers
    else:
        assert request.method == "POST"
        assert request.headers["Upgrade"] == "SPDY/3.1"
        assert "X-Stream-Protocol-Version" in request.headers


def kproxy_sockets(kp: KproxyProcess) -> int:
    count = 0
    fd_dir = f"/proc/{kp.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass  # closed while we looked
    return count


def task_count() -> int:
    return len(asyncio.all_tasks())


async def warm_up(kubectl: Kubectl) -> None:
    """One request through kproxy, so its pool holds the connection later GETs reuse."""
    code, _, err = await kubectl.run("get", "pod", POD, "-o", "name")
    assert code == 0, err


@dataclass
class Baseline:
    sockets: int
    tasks: int


async def baseline(kp: KproxyProcess) -> Baseline:
    await asyncio.sleep(0.1)  # let the connections of the previous command settle
    return Baseline(kproxy_sockets(kp), task_count())


async def assert_no_leaks(api: FakeAPIServer, kp: KproxyProcess, before: Baseline) -> None:
    await until(lambda: api.runtime.open_sessions() == 0, lambda: api.runtime.sessions, timeout=5.0)
    await until(lambda: kproxy_sockets(kp) <= before.sockets, lambda: (kproxy_sockets(kp), before.sockets), timeout=5.0)
    await until(
        lambda: task_count() <= before.tasks, lambda: (task_count(), before.tasks, asyncio.all_tasks()), timeout=5.0
    )


async def raw_upgrade(port: int, path: str, kind: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    method, headers = UPGRADE_HEADERS[kind]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: 0\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head, reader, writer


async def read_body(head: bytes, reader: asyncio.StreamReader) -> bytes:
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return await asyncio.wait_for(reader.readexactly(length), 5)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


# -- kubectl, each transport forced -------------------------------------------------------


async def test_exec_echo(kubectl: Kubectl, api: FakeAPIServer) -> None:
    code, out, err = await kubectl.run("exec", POD, "--", "echo", "hi")
    assert (code, out, err) == (0, b"hi\n", "")
    assert_sessions(api, kubectl.transport, "exec", 1)
    session = api.runtime.sessions[-1]
    assert (session.container, session.command, session.exit_code) == (CONTAINER, ("echo", "hi"), 0)
    [request] = upgrade_requests(api, "exec")
    assert_upgrade_request(request, kubectl.transport)
    assert "command=echo&command=hi" in request.query_string


async def test_exec_stdin_to_cat(kubectl: Kubectl, api: FakeAPIServer) -> None:
    payload = debug_pattern(300_000)  # several frames each way, binary
    code, out, err = await kubectl.run("exec", "-i", POD, "--", "cat", stdin=payload)
    assert (code, err) == (0, "")
    assert out == payload
    assert_sessions(api, kubectl.transport, "exec", 1)
    assert api.runtime.sessions[-1].stdin


async def test_exec_exit_codes(kubectl: Kubectl, api: FakeAPIServer) -> None:
    code, out, err = await kubectl.run("exec", POD, "--", "sh", "-c", "exit 3")
    assert (code, out) == (3, b"")
    assert err == "command terminated with exit code 3\n"
    code, _, err = await kubectl.run("exec", POD, "--", "false")
    assert (code, err) == (1, "command terminated with exit code 1\n")
    code, _, err = await kubectl.run("exec", POD, "--", "no-such-binary")
    assert code == 1 and 'exec: "no-such-binary": executable file not found in $PATH' in err
    assert [s.exit_code for s in api.runtime.sessions] == [3, 1, None]
    assert_sessions(api, kubectl.transport, "exec", 3)


async def test_attach(kubectl: Kubectl, api: FakeAPIServer) -> None:
    greeting = f"attached to default/{POD}/{CONTAINER}\n".encode()
    code, out, err = await kubectl.run("attach", "-i", POD, stdin=b"one\ntwo\n")
    assert code == 0, err
    assert out == greeting + b"one\ntwo\n"
    code, out, err = await kubectl.run("attach", POD)
    assert (code, out) == (0, greeting), err
    assert_sessions(api, kubectl.transport, "attach", 2)
    assert [r.method for r in upgrade_requests(api, "attach")] == [
        "GET" if kubectl.transport == "websocket" else "POST"
    ] * 2


async def test_cp_both_ways(kubectl: Kubectl, api: FakeAPIServer, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    upload = local / "up.bin"
    upload.write_bytes(debug_pattern(100_000))
    tree = local / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.txt").write_text("beta\n")

    code, _, err = await kubectl.run("cp", str(upload), f"{POD}:/tmp/up.bin")
    assert code == 0, err
    code, _, err = await kubectl.run("cp", str(tree), f"{POD}:/tmp/tree")
    assert code == 0, err
    fs = api.runtime.filesystem("default", POD, CONTAINER)
    assert fs.read("/tmp/up.bin") == upload.read_bytes()
    assert fs.read("/tmp/tree/a.txt") == b"alpha\n" and fs.read("/tmp/tree/sub/b.txt") == b"beta\n"
    # The same bytes, seen from inside the "container".
    code, out, _ = await kubectl.run("exec", POD, "--", "cat", "/tmp/tree/sub/b.txt")
    assert (code, out) == (0, b"beta\n")

    back = tmp_path / "back"
    back.mkdir()
    code, _, err = await kubectl.run("cp", f"{POD}:/tmp/up.bin", str(back / "up.bin"))
    assert code == 0, err
    assert (back / "up.bin").read_bytes() == upload.read_bytes()
    code, _, err = await kubectl.run("cp", f"{POD}:/tmp/tree", str(back / "tree"))
    assert code == 0, err
    assert (back / "tree" / "a.txt").read_text() == "alpha\n"
    assert (back / "tree" / "sub" / "b.txt").read_text() == "beta\n"

    commands = [s.command[:2] for s in api.runtime.sessions]
    assert commands == [
        ("test", "-d"),
        ("tar", "-xmf"),
        ("test", "-d"),
        ("tar", "-xmf"),
        ("cat", "/tmp/tree/sub/b.txt"),
        ("tar", "cf"),
        ("tar", "cf"),
    ]
    assert_sessions(api, kubectl.transport, "exec", 7)


async def test_port_forward(api: FakeAPIServer, proxy: KproxyProcess, tmp_path: Path, transport: str) -> None:
    # Port-forward passes the default filter: the plain ``proxy`` fixture (default flags).
    kubectl = Kubectl(proxy.url, tmp_path, transport)
    connections: list[asyncio.StreamWriter] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    api.runtime.forward_port("default", POD, 8080, "127.0.0.1", echo_server.sockets[0].getsockname()[1])
    proc = await kubectl.start("port-forward", POD, ":8080")
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.endswith(" -> 8080\n"), line
        local_port = int(line.split()[2].rsplit(":", 1)[1])

        async def round_trip(payload: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            try:
                writer.write(payload)
                await writer.drain()
                return await asyncio.wait_for(reader.readexactly(len(payload)), 10)
            finally:
                await close_writer(writer)

        assert await round_trip(b"hello through the tunnel\n") == b"hello through the tunnel\n"
        big = debug_pattern(200_000)
        assert await round_trip(big) == big
        # Two connections at once share the one upgraded connection.
        results = await asyncio.gather(round_trip(b"A" * 5000), round_trip(b"B" * 7000))
        assert list(results) == [b"A" * 5000, b"B" * 7000]  # (a list at run time; typeshed says a tuple)
        await until(lambda: api.runtime.sessions[-1].connections == 4, lambda: api.runtime.sessions[-1], timeout=5.0)
        assert_sessions(api, transport, "portforward", 1)
        assert api.runtime.open_sessions() == 1
    finally:
        proc.send_signal(signal.SIGKILL)  # kubectl port-forward runs until killed
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        echo_server.close()
        for writer in connections:
            writer.close()
        await echo_server.wait_closed()
    assert out.decode().count(f"Handling connection for {local_port}\n") == 4
    assert "error" not in err.decode().lower(), err
    # kubectl vanished: the upstream side of the tunnel closed too.
    await until(lambda: api.runtime.open_sessions() == 0, lambda: api.runtime.sessions, timeout=5.0)
    [request] = upgrade_requests(api, "portforward")
    assert_upgrade_request(request, transport)


async def test_two_concurrent_exec_sessions(kubectl: Kubectl, api: FakeAPIServer) -> None:
    procs = [await kubectl.start("exec", "-i", POD, "--", "cat", stdin=True) for _ in range(2)]
    try:
        for i, proc in enumerate(procs):
            assert proc.stdin is not None
            proc.stdin.write(f"first {i}\n".encode())
            await proc.stdin.drain()
        for i, proc in enumerate(procs):
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 20) == f"first {i}\n".encode()
        assert api.runtime.open_sessions() == 2  # both live at the same time
        for i, proc in enumerate(procs):
            assert proc.stdin is not None
            proc.stdin.write(f"second {i}\n".encode())
            proc.stdin.close()
        for i, proc in enumerate(procs):
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert (proc.returncode, out, err) == (0, f"second {i}\n".encode(), b"")
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert_sessions(api, kubectl.transport, "exec", 2)


async def test_default_filter_rejects_exec_and_attach(
    api: FakeAPIServer, proxy: KproxyProcess, tmp_path: Path, transport: str
) -> None:
    kubectl = Kubectl(proxy.url, tmp_path, transport)
    for args in (("exec", POD, "--", "echo", "hi"), ("attach", POD)):
        code, out, err = await kubectl.run(*args)
        assert (code, out) == (1, b"")
        # In WebSocket mode kubectl retried over SPDY after the 403, as it does with kubectl proxy.
        assert "error: unable to upgrade connection: Forbidden" in err, err
    assert api.runtime.sessions == []
    assert upgrade_requests(api, "exec") == upgrade_requests(api, "attach") == []


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["websocket", "spdy"])
async def test_upgrade_to_missing_pod_relays_404(api: FakeAPIServer, exec_proxy: KproxyProcess, kind: str) -> None:
    before = await baseline(exec_proxy)
    path = "/api/v1/namespaces/default/pods/no-such-pod/exec?command=echo&command=hi&stdout=true&stderr=true"
    head, reader, writer = await raw_upgrade(exec_proxy.port, path, kind)
    try:
        assert head.startswith(b"HTTP/1.1 404 "), head
        status = json.loads(await read_body(head, reader))
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)
        assert status["message"] == 'pods "no-such-pod" not found'
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection ends
    finally:
        await close_writer(writer)
    assert api.runtime.sessions == []
    await assert_no_leaks(api, exec_proxy, before)


async def test_upstream_closes_mid_session(kubectl: Kubectl, api: FakeAPIServer, exec_proxy: KproxyProcess) -> None:
    await warm_up(kubectl)
    before = await baseline(exec_proxy)
    proc = await kubectl.start("exec", POD, "--", "sleep", "60")
    try:
        await until(lambda: api.runtime.open_sessions() == 1, lambda: api.runtime.sessions, timeout=20)
        await asyncio.sleep(0.2)  # the client's streams are set up
        assert api.runtime.abort_sessions() == 1
        started = time.monotonic()
        await asyncio.wait_for(proc.wait(), 10)
        assert time.monotonic() - started < 5, "kubectl noticed the cut late"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    if kubectl.transport == "websocket":
        # The WebSocket ended without a close frame: an error, not a clean exit.
        assert proc.returncode != 0 and "error" in err.lower(), err
    assert api.runtime.sessions[-1].exit_code is None
    await assert_no_leaks(api, exec_proxy, before)


async def test_client_vanishes_upstream_closes(kubectl: Kubectl, api: FakeAPIServer, exec_proxy: KproxyProcess) -> None:
    await warm_up(kubectl)
    before = await baseline(exec_proxy)
    proc = await kubectl.start("exec", "-i", POD, "--", "sleep", "60", stdin=True)
    try:
        await until(lambda: api.runtime.open_sessions() == 1, lambda: api.runtime.sessions, timeout=20)
        await asyncio.sleep(0.2)
        assert kproxy_sockets(exec_proxy) > before.sockets
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert_sessions(api, kubectl.transport, "exec", 1)
    await assert_no_leaks(api, exec_proxy, before)


@pytest.mark.parametrize("kind", ["websocket", "spdy"])
async def test_garbage_after_101_is_relayed_opaquely(api: FakeAPIServer, exec_proxy: KproxyProcess, kind: str) -> None:
    before = await baseline(exec_proxy)
    head, reader, writer = await raw_upgrade(
        exec_proxy.port, f"/api/v1/namespaces/default/pods/{POD}/exec?command=garbage", kind
    )
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert await asyncio.wait_for(reader.readexactly(len(GARBAGE)), 5) == GARBAGE
        for payload in (b"\x80\x03\x00\x01 not spdy either", b"GET / HTTP/1.1\r\n\r\n"):
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    finally:
        await close_writer(writer)
    assert [(s.kind, s.command, s.transport) for s in api.runtime.sessions] == [("raw", ("garbage",), kind)]
    await assert_no_leaks(api, exec_proxy, before)


async def close_upstream_mid_session(api: FakeAPIServer, kp: KproxyProcess, kind: str) -> float:
    """A raw session through kproxy whose upstream end the fake closes in an orderly way;
    returns how long the client waited for its own end to close."""
    head, reader, writer = await raw_upgrade(kp.port, f"/api/v1/namespaces/default/pods/{POD}/exec?command=echo", kind)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        assert api.runtime.close_sessions() == 1
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        return time.monotonic() - started
    finally:
        await close_writer(writer)


@pytest.mark.parametrize("kind", ["websocket", "spdy"])
async def test_upstream_closes_gracefully_mid_session(api: FakeAPIServer, exec_proxy: KproxyProcess, kind: str) -> None:
    before = await baseline(exec_proxy)
    assert await close_upstream_mid_session(api, exec_proxy, kind) < 2
    await assert_no_leaks(api, exec_proxy, before)


async def test_upstream_close_leaves_kproxy_stderr_quiet(api: FakeAPIServer, exec_proxy: KproxyProcess) -> None:
    await close_upstream_mid_session(api, exec_proxy, "spdy")
    await asyncio.sleep(0.3)
    assert exec_proxy.stderr == ""


async def test_non_upgrade_answer_below_400_is_502(api: FakeAPIServer, exec_proxy: KproxyProcess) -> None:
    before = await baseline(exec_proxy)
    head, reader, writer = await raw_upgrade(exec_proxy.port, "/debug/kproxy/status?code=200", "websocket")
    try:
        assert head.startswith(b"HTTP/1.1 502 "), head
        status = json.loads(await read_body(head, reader))
        assert status["kind"] == "Status" and status["code"] == 502
        assert status["message"] == "invalid upgrade response: status code 200"
    finally:
        await close_writer(writer)
    await assert_no_leaks(api, exec_proxy, before)


@pytest.mark.parametrize("kind", ["websocket", "spdy"])
async def test_upstream_down_is_502_status(start_kproxy: StartKproxy, kind: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kp = await start_kproxy("--port", "0", "--server", f"http://127.0.0.1:{port}", "--reject-paths=")
    before = await baseline(kp)
    head, reader, writer = await raw_upgrade(kp.port, f"/api/v1/namespaces/default/pods/{POD}/exec?command=echo", kind)
    try:
        assert head.startswith(b"HTTP/1.1 502 "), head
        status = json.loads(await read_body(head, reader))
        assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", 502)
        assert f"127.0.0.1:{port}" in status["message"] and "refused" in status["message"]
    finally:
        await close_writer(writer)
    await until(lambda: kproxy_sockets(kp) <= before.sockets, lambda: (kproxy_sockets(kp), before.sockets), timeout=5.0)


async def test_failed_upgrade_closes_the_connection(start_kproxy: StartKproxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kp = await start_kproxy("--port", "0", "--server", f"http://127.0.0.1:{port}", "--reject-paths=")
    head, reader, writer = await raw_upgrade(
        kp.port, f"/api/v1/namespaces/default/pods/{POD}/exec?command=echo", "spdy"
    )
    try:
        assert head.startswith(b"HTTP/1.1 502 ")
        await read_body(head, reader)
        writer.write(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        # Either an answer or the end of the connection; not silence.
        assert await asyncio.wait_for(reader.read(), 15) == b""
    finally:
        await close_writer(writer)


# -- the protocols themselves, without kubectl ---------------------------------------------


WsConnect = Callable[[str, str], Any]  # what session.ws_connect returns: an async context manager


@pytest.fixture
async def ws_client(exec_proxy: KproxyProcess) -> AsyncIterator[WsConnect]:
    """Opens a WebSocket exec through kproxy: ``connect(query, subprotocol)``."""
    async with aiohttp.ClientSession() as session:

        def connect(query: str, protocol: str) -> Any:
            url = f"{exec_proxy.url}/api/v1/namespaces/default/pods/{POD}/exec?{query}"
            return session.ws_connect(url, protocols=(protocol,), autoping=True)

        yield connect


async def receive_all(ws: aiohttp.ClientWebSocketResponse) -> list[bytes]:
    """Binary messages up to the server's close frame, which must be a normal closure."""
    messages: list[bytes] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), 10)
        if msg.type != aiohttp.WSMsgType.BINARY:
            # Like kube-apiserver, the fake closes the connection right after its close
            # frame, so the client's reply may not get through: check what was received.
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1000)
            return messages
        messages.append(msg.data)


async def test_websocket_channels_v4_v5_status_and_resize(ws_client: WsConnect, api: FakeAPIServer) -> None:
    # v4: stdin on channel 0, stdout on channel 1; no half-close signal, so closing ends it.
    async with ws_client("command=cat&stdin=true&stdout=true&stderr=true", "v4.channel.k8s.io") as ws:
        assert ws.protocol == "v4.channel.k8s.io"
        await ws.send_bytes(b"\x00hello v4")
        assert (await asyncio.wait_for(ws.receive_bytes(), 10)) == b"\x01hello v4"
    # v5: [255, 0] closes stdin; the Status arrives on channel 3, then a normal closure.
    async with ws_client("command=cat&stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io") as ws:
        await ws.send_bytes(b"\x00bye")
        await ws.send_bytes(b"\xff\x00")
        messages = await receive_all(ws)
        assert messages == [b"\x01bye", b'\x03{"metadata":{},"status":"Success"}']
    async with ws_client("command=sh&command=-c&command=exit 7&stdout=true&stderr=true", "v5.channel.k8s.io") as ws:
        messages = await receive_all(ws)
        assert messages[-1][:1] == b"\x03"
        status = json.loads(messages[-1][1:])
        assert (status["status"], status["reason"]) == ("Failure", "NonZeroExitCode")
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]
    # A terminal: resize messages on channel 4 reach the container.
    async with ws_client("command=sleep&command=30&stdin=true&stdout=true&tty=true", "v5.channel.k8s.io") as ws:
        await ws.send_bytes(b'\x04{"Width":100,"Height":40}')
        await ws.send_bytes(b'\x04{"Width":120,"Height":50}')
        await until(
            lambda: api.runtime.sessions[-1].resizes == [(100, 40), (120, 50)],
            lambda: api.runtime.sessions[-1].resizes,
            timeout=5.0,
        )
    assert [(s.protocol, s.tty) for s in api.runtime.sessions] == [
        ("v4.channel.k8s.io", False),
        ("v5.channel.k8s.io", False),
        ("v5.channel.k8s.io", False),
        ("v5.channel.k8s.io", True),
    ]
    await until(lambda: api.runtime.open_sessions() == 0, lambda: api.runtime.sessions, timeout=5.0)


async def test_unsupported_subprotocol_is_refused_before_the_upgrade(exec_proxy: KproxyProcess) -> None:
    path = f"/api/v1/namespaces/default/pods/{POD}/exec?command=echo&stdout=true"
    reader, writer = await asyncio.open_connection("127.0.0.1", exec_proxy.port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: channel.k8s.io\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        # A 400 is what makes kubectl retry over SPDY.
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert "v5.channel.k8s.io" in json.loads(await read_body(head, reader))["message"]
    finally:
        await close_writer(writer)
