"""What the sharing tests (test_sharing_tls.py, test_sharing_identity.py) have in common: a
team PKI for kproxy's own listener (apart from the API server's), kproxy started with
TLS, and clients that speak HTTPS to it: curl, a keep-alive client of our own, kubectl."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

from kproxy.testing import CertPair, TestPKI
from tests.certificates import ClientFiles, write_client
from tests.conftest import KproxyProcess, StartKproxy, kubectl_env
from tests.integration.test_forwarding import curl


@dataclass
class Team:
    """The team's CA (kproxy's listener certificate and its users' client certificates)."""

    pki: TestPKI
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def user(self, label: str, pair: CertPair) -> ClientFiles:
        return write_client(self.dir / "users", label, pair)

    def issue(self, cn: str, groups: tuple[str, ...] = ()) -> ClientFiles:
        return self.user(cn, self.pki.issue_client(cn, groups))

    def client_context(self, pair: CertPair | None = None) -> ssl.SSLContext:
        return self.pki.client_ssl_context(pair)


def make_team(tmp_path: Path) -> Team:
    pki = TestPKI.create()
    directory = tmp_path / "team"
    pki.write(directory)
    return Team(pki, directory)


async def start_tls(
    start_kproxy: StartKproxy,
    kubeconfig: Path,
    team: Team,
    *args: str,
    cert: Path | None = None,
    key: Path | None = None,
) -> KproxyProcess:
    """kproxy serving HTTPS with the team's server pair (or ``cert``/``key``)."""
    pair = ["--tls-cert-file", str(cert or team.server_cert), "--tls-private-key-file", str(key or team.server_key)]
    return await start_kproxy("--port", "0", "--kubeconfig", str(kubeconfig), *pair, *args)


def https(kp: KproxyProcess, path: str = "") -> str:
    return f"https://127.0.0.1:{kp.port}{path}"


async def curl_json(team: Team, kp: KproxyProcess, path: str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    """GET over HTTPS with curl; (HTTP status, JSON body or {"raw": text})."""
    code, out, err = await curl("-s", "-w", "\n%{http_code}", "--cacert", str(team.ca), *extra, https(kp, path))
    assert code == 0, err
    body, _, status = out.rpartition("\n")
    return int(status), (json.loads(body) if body.startswith("{") else {"raw": body})


class KeepAlive:
    """One kept-alive HTTPS connection to kproxy, for requests one after the other."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, kp: KproxyProcess, ctx: ssl.SSLContext, source: str | None = None) -> KeepAlive:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", kp.port, ssl=ctx, server_hostname="localhost", local_addr=local
        )
        return cls(reader, writer)

    @property
    def peer_certificate(self) -> bytes:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der is not None
        return bytes(der)

    async def get(self, path: str, *headers: str) -> tuple[int, bytes]:
        extra = "".join(f"{h}\r\n" for h in headers)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 15)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        return status, await asyncio.wait_for(self.reader.readexactly(length), 15)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def kubectl(home: Path, *args: str, timeout: float = 60, cwd: Path | None = None) -> tuple[int, str, str]:
    home.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=kubectl_env(home),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def kubectl_tls(kp: KproxyProcess, team: Team, user: ClientFiles | None) -> list[str]:
    """kubectl's flags to reach kproxy's TLS port as ``user`` (its client certificate)."""
    args = ["--server", https(kp), "--certificate-authority", str(team.ca)]
    if user is not None:
        args += ["--client-certificate", str(user.cert), "--client-key", str(user.key)]
    return args
