"""Authorized IP ranges through the real kproxy process: real client source addresses
(127.0.0.2, 127.0.0.3, ::1), denials as Status JSON, reloads on SIGHUP and on file change,
upgraded sessions closed when their range goes, trusted front proxies."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from kproxy.testing import FakeAPIServer
from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.test_forwarding import curl
from tests.waiting import until


async def get_from(source: str, kp: KproxyProcess, path: str = "/version", *extra: str) -> tuple[int, dict[str, Any]]:
    """GET through kproxy from a given source address; (HTTP status, JSON body)."""
    code, out, err = await curl("-s", "-w", "\n%{http_code}", "--interface", source, *extra, f"{kp.url}{path}")
    assert code == 0, err
    body, _, status = out.rpartition("\n")
    return int(status), (json.loads(body) if body.startswith("{") else {"raw": body})


async def test_allowed_and_denied_by_source_address(
    kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path, api: FakeAPIServer
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "f.txt").write_text("static")
    kp = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--www",
        str(www),
        "--authorized-ip-ranges",
        "127.0.0.2/32, 10.0.0.0/8",
    )
    status, body = await get_from("127.0.0.2", kp)
    assert status == 200 and body["major"] == "1"
    before = len(api.requests)
    status, body = await get_from("127.0.0.3", kp)
    assert status == 403
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert body["message"] == "client 127.0.0.3 is not in the authorized IP ranges"
    assert len(api.requests) == before  # nothing was forwarded
    status, _ = await get_from("127.0.0.3", kp, "/static/f.txt")
    assert status == 403  # static files are guarded too
    # Loopback is not special: 127.0.0.1 is denied unless a range covers it.
    status, _ = await get_from("127.0.0.1", kp)
    assert status == 403
    await asyncio.sleep(0.2)
    assert "authorized IP ranges: 2 ranges in force" in kp.stderr
    assert "Denied client 127.0.0.3" in kp.stderr


async def test_denial_log_is_rate_limited(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges", "10.0.0.0/8")
    for _ in range(20):
        status, _ = await get_from("127.0.0.3", kp)
        assert status == 403
    await asyncio.sleep(0.2)
    assert kp.stderr.count("Denied client") == 1


async def test_ipv6_and_mapped_clients(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--address",
        "0.0.0.0",
        "--authorized-ip-ranges",
        "::1,127.0.0.2",
    )
    # On the dual-stack listener the IPv4 client arrives as ::ffff:127.0.0.2, matched as IPv4.
    status, _ = await get_from("127.0.0.2", kp)
    assert status == 200
    status, body = await get_from("127.0.0.3", kp)
    assert status == 403 and "client 127.0.0.3 " in body["message"]
    code, out, _ = await curl("-s", "-g", "-o", "/dev/null", "-w", "%{http_code}", f"http://[::1]:{kp.port}/version")
    assert out == "200"


async def test_dual_stack_ipv4_client_forwarded_as_ipv4(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    # Go's RemoteAddr shows an IPv4 client of a [::] listener as IPv4, and so does
    # the X-Forwarded-For kubectl proxy appends.
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--address", "0.0.0.0")
    status, body = await get_from("127.0.0.2", kp, "/debug/kproxy/echo", "-H", "X-Forwarded-For: 10.0.0.1")
    assert status == 200
    assert dict(body["headers"])["X-Forwarded-For"] == "10.0.0.1, 127.0.0.2"
    code, out, _ = await curl("-s", "-g", f"http://[::1]:{kp.port}/debug/kproxy/echo")
    assert dict(json.loads(out)["headers"])["X-Forwarded-For"] == "::1"


async def test_this_machine_only(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges", "0.0.0.0/32")
    for source in ("127.0.0.1", "127.0.0.5"):
        status, _ = await get_from(source, kp)
        assert status == 200


async def test_unix_socket_clients_are_admitted(kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path) -> None:
    sock = tmp_path / "k.sock"
    await start_kproxy("-u", str(sock), "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges", "10.0.0.0/8")
    code, out, _ = await curl("--unix-socket", str(sock), "http://localhost/version")
    assert json.loads(out)["major"] == "1"


async def test_reload_on_sighup_and_on_change(kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("# team\n127.0.0.2/32\n")
    kp = await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges-file", str(ranges))
    assert (await get_from("127.0.0.2", kp))[0] == 200
    assert (await get_from("127.0.0.3", kp))[0] == 403

    ranges.write_text("127.0.0.3/32  # moved\n")
    kp.proc.send_signal(signal.SIGHUP)

    async def moved() -> bool:
        return (await get_from("127.0.0.3", kp))[0] == 200

    await until(moved, "127.0.0.3 let in after SIGHUP", timeout=5.0, step=0.1)
    assert (await get_from("127.0.0.2", kp))[0] == 403

    # An invalid or empty file is refused: the list in force stays.
    for bad in ("127.0.0.9/29\n", "", "# nothing\n"):
        ranges.write_text(bad)
        kp.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.3)
        assert (await get_from("127.0.0.3", kp))[0] == 200
        assert (await get_from("127.0.0.2", kp))[0] == 403
    assert "Keeping the authorized IP ranges in force" in kp.stderr
    assert "use '127.0.0.8/29'" in kp.stderr

    # A change is noticed without any signal, too.
    ranges.write_text("127.0.0.2\n")

    async def back() -> bool:
        return (await get_from("127.0.0.2", kp))[0] == 200

    await until(back, "127.0.0.2 let in after the file changed", timeout=5.0, step=0.1)
    assert await kp.stop() == 0


async def test_upgraded_session_closed_when_its_range_goes(
    kubeconfig: Path, start_kproxy: StartKproxy, tmp_path: Path, api: FakeAPIServer
) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("127.0.0.2\n127.0.0.3\n")
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--reject-paths=", "--authorized-ip-ranges-file", str(ranges)
    )
    code, out, _ = await curl("--interface", "127.0.0.2", f"{kp.url}/api/v1/namespaces/default/pods")
    pod = json.loads(out)["items"][0]["metadata"]["name"]
    sessions = {}
    for source in ("127.0.0.2", "127.0.0.3"):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", kp.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(
            f"POST /api/v1/namespaces/default/pods/{pod}/exec?command=echo HTTP/1.1\r\nHost: localhost\r\n"
            "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        sessions[source] = (reader, writer)
    ranges.write_text("127.0.0.3\n")
    kp.proc.send_signal(signal.SIGHUP)
    reader, writer = sessions["127.0.0.2"]
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by kproxy
    reader3, writer3 = sessions["127.0.0.3"]
    writer3.write(b"still")
    assert await asyncio.wait_for(reader3.readexactly(5), 5) == b"still"
    for _, w in sessions.values():
        w.close()


async def test_trusted_front_proxies(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--authorized-ip-ranges",
        "10.1.0.0/16",
        "--trusted-proxies",
        "127.0.0.2",
    )
    # From the trusted proxy, X-Forwarded-For names the client.
    status, _ = await get_from("127.0.0.2", kp, "/version", "-H", "X-Forwarded-For: 10.1.2.3")
    assert status == 200
    status, body = await get_from("127.0.0.2", kp, "/version", "-H", "X-Forwarded-For: 10.9.9.9")
    assert status == 403 and "client 10.9.9.9 " in body["message"]
    # From anyone else, the header is ignored.
    status, body = await get_from("127.0.0.3", kp, "/version", "-H", "X-Forwarded-For: 10.1.2.3")
    assert status == 403 and "client 127.0.0.3 " in body["message"]


async def test_exposure_warning(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--address", "0.0.0.0", "--accept-hosts", ".*"
    )
    await asyncio.sleep(0.2)
    assert "relaxed --accept-hosts and no --authorized-ip-ranges" in kp.stderr
    kp2 = await start_kproxy(
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--address",
        "0.0.0.0",
        "--accept-hosts",
        ".*",
        "--authorized-ip-ranges",
        "127.0.0.1",
    )
    await asyncio.sleep(0.2)
    assert "relaxed" not in kp2.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--check-ip", "10.1.2.3", "--authorized-ip-ranges", "10.0.0.0/8"], 0, "10.1.2.3 is allowed by 10.0.0.0/8"),
        (["--check-ip", "::ffff:10.1.2.3", "--authorized-ip-ranges", "10.0.0.0/8"], 0, "is allowed by 10.0.0.0/8"),
        (
            ["--check-ip", "11.0.0.1", "--authorized-ip-ranges", "10.0.0.0/8"],
            1,
            "11.0.0.1 is not in the authorized IP ranges",
        ),
        (["--check-ip", "11.0.0.1"], 0, "check is off"),
    ],
)
async def test_check_ip(args: list[str], code: int, needle: str) -> None:
    from tests.integration.test_process import run_to_exit

    rc, out, err = await run_to_exit(*args)
    assert rc == code and needle in out, err


async def test_bad_ranges_exit_naming_entry(tmp_path: Path) -> None:
    from tests.integration.test_process import run_to_exit

    rc, out, err = await run_to_exit(
        "--port", "0", "--server", "http://127.0.0.1:1", "--authorized-ip-ranges", "10.0.0.0/8,137.117.106.90/29"
    )
    assert rc == 1 and "entry 2" in err and "use '137.117.106.88/29'" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    rc, out, err = await run_to_exit(
        "--port", "0", "--server", "http://127.0.0.1:1", "--authorized-ip-ranges-file", str(empty)
    )
    assert rc == 1 and str(empty) in err


async def connect_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_denied_at_the_door_before_a_byte_is_read(
    kubeconfig: Path, start_kproxy: StartKproxy, api: FakeAPIServer
) -> None:
    # The attacker's side: connect from outside the ranges and say nothing. The 403 comes
    # at once and the connection ends; no head, however slow, can hold it (the header
    # deadline is off here, so only the door can have closed it).
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges", "127.0.0.2/32",
        "--read-header-timeout=0", "--idle-timeout=0",
    )  # fmt: skip
    before = len(api.requests)
    reader, writer = await connect_from("127.0.0.3", kp.port)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: close" in head
    status = json.loads(body)
    assert status["kind"] == "Status" and status["message"] == "client 127.0.0.3 is not in the authorized IP ranges"
    # A request sent right away is never read, let alone forwarded.
    reader, writer = await connect_from("127.0.0.3", kp.port)
    writer.write(b"GET /api/v1/namespaces/default/secrets HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert len(api.requests) == before
    # An allowed client is served as before.
    status_code, version = await get_from("127.0.0.2", kp)
    assert status_code == 200 and version["major"] == "1"
    await asyncio.sleep(0.2)
    assert "Denied client 127.0.0.3: not in the authorized IP ranges (at connect)" in kp.stderr


async def test_behind_trusted_proxies_each_request_is_judged(kubeconfig: Path, start_kproxy: StartKproxy) -> None:
    # The socket peer is a front proxy: the client is known only from X-Forwarded-For.
    kp = await start_kproxy(
        "--port", "0", "--kubeconfig", str(kubeconfig), "--authorized-ip-ranges", "10.0.0.0/8",
        "--trusted-proxies", "127.0.0.3/32",
    )  # fmt: skip
    status, _ = await get_from("127.0.0.3", kp, "/version", "-H", "X-Forwarded-For: 10.1.2.3")
    assert status == 200
    status, body = await get_from("127.0.0.3", kp, "/version", "-H", "X-Forwarded-For: 192.168.1.1")
    assert status == 403 and body["message"] == "client 192.168.1.1 is not in the authorized IP ranges"
