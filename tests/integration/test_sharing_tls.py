"""kproxy's TLS listener through the real process: HTTPS with curl and a keep-alive client,
Go's answer to plain HTTP, versions and suites, certificate reloads (atomic rename as a
Kubernetes secret volume does, in-place write, SIGHUP, a bad pair), authorized ranges
checked before the handshake, and bad input at start-up. Certificates are made here."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
from pathlib import Path

import pytest

from kproxy.testing import FakeAPIServer
from tests.certificates import SecretVolume, issue, name, serial
from tests.conftest import StartKproxy
from tests.integration.sharing import KeepAlive, Team, curl_json, https, make_team, start_tls
from tests.integration.test_forwarding import curl
from tests.integration.test_process import run_to_exit
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

GO_PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return make_team(tmp_path)


async def test_https_with_curl(api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team) -> None:
    kp = await start_tls(start_kproxy, kubeconfig, team)
    assert re.fullmatch(r"127\.0\.0\.1:\d+", kp.address)  # stdout: exactly "Starting to serve on ADDR"
    status, body = await curl_json(team, kp, "/version")
    assert status == 200 and body["major"] == "1"
    status, body = await curl_json(team, kp, "/api/v1/namespaces/default/pods")
    assert status == 200 and body["kind"] == "PodList"
    assert api.requests[-1].user == "kproxy-token-user"
    # curl verified kproxy's certificate against the team's CA: without it, it refuses.
    code, _, err = await curl("-s", https(kp, "/version"))
    assert code == 60, err
    await asyncio.sleep(0.2)
    assert f"serving HTTPS with --tls-cert-file {team.server_cert} (TLS 1.2+)" in kp.stderr
    assert await kp.stop() == 0


async def test_plain_http_gets_gos_answer_and_nothing_is_forwarded(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    kp = await start_tls(start_kproxy, kubeconfig, team)
    before = len(api.requests)
    code, out, _ = await curl("-s", "-i", f"http://127.0.0.1:{kp.port}/api/v1/namespaces/default/pods")
    assert (code, out.encode()) == (0, GO_PLAIN_HTTP_ANSWER)
    for request in (
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
        b"PUT /api/v1/namespaces/default/configmaps/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
        writer.write(request)
        assert await asyncio.wait_for(reader.read(), 5) == GO_PLAIN_HTTP_ANSWER
        writer.close()
    # Not HTTP and not TLS: closed without a word.
    reader, writer = await asyncio.open_connection("127.0.0.1", kp.port)
    writer.write(b"DELETE /api/v1/namespaces/default HTTP/1.1\r\n\r\n")
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        pass
    writer.close()
    assert len(api.requests) == before
    # HTTPS still works afterwards.
    assert (await curl_json(team, kp, "/version"))[0] == 200


async def test_minimum_version_and_cipher_suites(kubeconfig: Path, start_kproxy: StartKproxy, team: Team) -> None:
    kp = await start_tls(start_kproxy, kubeconfig, team, "--tls-min-version", "VersionTLS13")
    code, _, err = await curl("-s", "--cacert", str(team.ca), "--tls-max", "1.2", https(kp, "/version"))
    assert code == 35, err  # the handshake is refused
    assert (await curl_json(team, kp, "/version", "--tlsv1.3"))[0] == 200

    suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    kp = await start_tls(start_kproxy, kubeconfig, team, "--tls-cipher-suites", suites)
    tls12 = ("--tls-max", "1.2")
    code, _, err = await curl(
        "-s", "--cacert", str(team.ca), *tls12, "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384", https(kp, "/version")
    )
    assert code == 35, err
    status, _ = await curl_json(team, kp, "/version", *tls12, "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert status == 200
    assert (await curl_json(team, kp, "/version"))[0] == 200  # TLS 1.3's suites are always on


async def test_reload_by_atomic_rename_keeps_open_connections(
    kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    volume = SecretVolume(tmp_path / "secret", team.pki.server)
    kp = await start_tls(start_kproxy, kubeconfig, team, cert=volume.cert, key=volume.key)
    ctx = team.client_context()
    old = await KeepAlive.open(kp, ctx)
    assert (await old.get("/version"))[0] == 200
    assert serial(old.peer_certificate) == serial(team.pki.server.cert_pem)

    rotated = issue(team.pki, name("kproxy-rotated"), server=True)
    volume.update(rotated)  # ..data swapped by one rename, as the kubelet does

    async def rotated_in_use() -> bool:
        fresh = await KeepAlive.open(kp, ctx)
        try:
            return serial(fresh.peer_certificate) == serial(rotated.cert_pem)
        finally:
            await fresh.close()

    await until(rotated_in_use, "the rotated certificate served", timeout=5.0, step=0.1)
    # The connection opened before the reload is untouched: same certificate, still serving.
    for _ in range(3):
        assert (await old.get("/version"))[0] == 200
    assert serial(old.peer_certificate) == serial(team.pki.server.cert_pem)
    await old.close()
    assert f"reloaded {volume.cert}, {volume.key}: new TLS connections use it" in kp.stderr


async def test_reload_of_in_place_writes_and_a_bad_pair(
    kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(team.pki.server.cert_pem)
    key.write_bytes(team.pki.server.key_pem)
    kp = await start_tls(start_kproxy, kubeconfig, team, cert=cert, key=key)
    ctx = team.client_context()

    async def serving(expected: bytes) -> bool:
        conn = await KeepAlive.open(kp, ctx)
        try:
            return serial(conn.peer_certificate) == serial(expected)
        finally:
            await conn.close()

    # A new certificate with the old key: refused, the pair in force stays, one line says why.
    second = issue(team.pki, name("kproxy-2"), server=True)
    cert.write_bytes(second.cert_pem)
    await asyncio.sleep(2.5)
    assert await serving(team.pki.server.cert_pem)
    refusals = [line for line in kp.stderr_lines if "Keeping the TLS certificate in force" in line]
    assert len(refusals) == 1 and f"--tls-private-key-file {key} does not match the certificate" in refusals[0]
    # The key follows (written in place too): the new pair is taken.
    key.write_bytes(second.key_pem)
    await until(lambda: serving(second.cert_pem), "the new pair served", timeout=5.0, step=0.1)
    assert "BEGIN" not in kp.stderr and "PRIVATE" not in kp.stderr


async def test_sighup_reloads_what_the_watch_cannot_see(
    kubeconfig: Path, start_kproxy: StartKproxy, team: Team, tmp_path: Path
) -> None:
    # Two pairs of exactly the same sizes: the second, written in place with the first's
    # modification times, leaves the stamps the file watch looks at as they were; only
    # SIGHUP can tell kproxy.
    first = issue(team.pki, name("kproxy"), server=True)
    for _ in range(500):
        second = issue(team.pki, name("kproxy"), server=True)
        if len(second.cert_pem) == len(first.cert_pem) and len(second.key_pem) == len(first.key_pem):
            break
    else:
        pytest.fail("no certificate of the same size came out")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    kp = await start_tls(start_kproxy, kubeconfig, team, cert=cert, key=key)
    stamps = [(p, p.stat()) for p in (cert, key)]
    cert.write_bytes(second.cert_pem)
    key.write_bytes(second.key_pem)
    for path, st in stamps:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [(p.stat().st_mtime_ns, p.stat().st_size, p.stat().st_ino) for p in (cert, key)] == [
        (st.st_mtime_ns, st.st_size, st.st_ino) for _, st in stamps
    ]
    ctx = team.client_context()

    async def serving(expected: bytes) -> bool:
        conn = await KeepAlive.open(kp, ctx)
        try:
            return serial(conn.peer_certificate) == serial(expected)
        finally:
            await conn.close()

    await asyncio.sleep(1.5)
    assert await serving(first.cert_pem)  # unseen by the watch
    kp.proc.send_signal(signal.SIGHUP)
    await until(lambda: serving(second.cert_pem), "the new pair served", timeout=5.0, step=0.1)
    assert await kp.stop() == 0


async def test_authorized_ranges_close_clients_before_the_handshake(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    kp = await start_tls(start_kproxy, kubeconfig, team, "--authorized-ip-ranges", "127.0.0.2")
    before = len(api.requests)
    assert (await curl_json(team, kp, "/version", "--interface", "127.0.0.2"))[0] == 200
    code, _, err = await curl("-s", "--cacert", str(team.ca), "--interface", "127.0.0.3", https(kp, "/version"))
    assert code in (35, 56), err  # no TLS: the connection is closed before the handshake
    # Not a byte of a TLS answer: the server's first flight never comes.
    sock = socket.socket()
    sock.bind(("127.0.0.3", 0))
    sock.settimeout(5)
    await asyncio.get_running_loop().run_in_executor(None, sock.connect, ("127.0.0.1", kp.port))
    wrapped = team.client_context().wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            await asyncio.get_running_loop().run_in_executor(None, wrapped.do_handshake)
    finally:
        wrapped.close()
        sock.close()
    assert len(api.requests) == before + 1
    await asyncio.sleep(0.2)
    assert (
        "Denied client 127.0.0.3: not in the authorized IP ranges (connection closed before the TLS handshake)"
        in kp.stderr
    )


async def test_trusted_proxies_are_judged_per_request_inside_tls(
    api: FakeAPIServer, kubeconfig: Path, start_kproxy: StartKproxy, team: Team
) -> None:
    kp = await start_tls(
        start_kproxy, kubeconfig, team, "--authorized-ip-ranges", "10.0.0.0/8", "--trusted-proxies", "127.0.0.1"
    )
    status, _ = await curl_json(team, kp, "/version", "-H", "X-Forwarded-For: 10.1.2.3")
    assert status == 200
    status, body = await curl_json(team, kp, "/version", "-H", "X-Forwarded-For: 192.0.2.7")
    assert status == 403 and body["message"] == "client 192.0.2.7 is not in the authorized IP ranges"
    code, _, _ = await curl("-s", "--cacert", str(team.ca), "--interface", "127.0.0.3", https(kp, "/version"))
    assert code in (35, 56)  # not a trusted proxy, not in the ranges: closed at the door


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing cert", "error: cannot read --tls-cert-file {tmp}/nope.crt: No such file or directory"),
        ("key only", "error: --tls-cert-file is missing: --tls-cert-file and --tls-private-key-file go together"),
        (
            "mismatch",
            "error: --tls-private-key-file {team}/client.key does not match the certificate in "
            "--tls-cert-file {team}/server.crt",
        ),
        ("key as cert", "error: --tls-cert-file {team}/server.key: no PEM certificate in the file"),
        ("empty CA", "error: --client-ca-file {tmp}/empty.pem: no PEM certificates in the file"),
        ("version", "error: --tls-min-version 'TLS13': unknown version; use VersionTLS12 (the default) or"),
        ("cipher", "error: --tls-cipher-suites 'AES128-SHA': unknown cipher suite; use Go's names"),
        ("impersonate", "error: --client-identity impersonate needs --client-ca-file"),
        ("mode", "error: --client-identity 'admin': unknown mode; use proxy (the default), impersonate or"),
    ],
)
async def test_bad_input_exits_1_with_one_line(
    case: str, needle: str, kubeconfig: Path, team: Team, tmp_path: Path
) -> None:
    (tmp_path / "empty.pem").write_text("# no certificates here\n")
    pair = ["--tls-cert-file", str(team.server_cert), "--tls-private-key-file", str(team.server_key)]
    args = {
        "missing cert": ["--tls-cert-file", str(tmp_path / "nope.crt"), "--tls-private-key-file", str(team.server_key)],
        "key only": ["--tls-private-key-file", str(team.server_key)],
        "mismatch": ["--tls-cert-file", str(team.server_cert), "--tls-private-key-file", str(team.dir / "client.key")],
        "key as cert": ["--tls-cert-file", str(team.server_key), "--tls-private-key-file", str(team.server_key)],
        "empty CA": [*pair, "--client-ca-file", str(tmp_path / "empty.pem")],
        "version": [*pair, "--tls-min-version", "TLS13"],
        "cipher": [*pair, "--tls-cipher-suites", "AES128-SHA"],
        "impersonate": [*pair, "--client-identity", "impersonate"],
        "mode": ["--client-identity", "admin"],
    }[case]
    code, out, err = await run_to_exit("--port", "0", "--kubeconfig", str(kubeconfig), *args)
    assert (code, out) == (1, "")
    assert err.splitlines() == [err.strip()]  # one line
    assert err.startswith(needle.format(tmp=tmp_path, team=team.dir)), err
    for secret in (team.pki.server.key_pem, team.pki.client.key_pem, team.pki.server.cert_pem):
        assert secret.decode().splitlines()[1] not in err
