"""Real third-party forward proxies for the egress tests, each a process we start and stop
by its PID: tinyproxy (HTTP, CONNECT, Basic auth), stunnel in front of it (an ``https://``
proxy), Dante (SOCKS5). Their own logs are the evidence of what went through them.

``hosts``: names only the proxy can resolve. The proxy then runs in a private mount
namespace (``unshare -m``, root only) with its own ``/etc/hosts`` bind-mounted over the
real one; the namespace and the mount vanish with the process. Everyone else, kproxy
included, fails to resolve those names, so a request that succeeds went through the proxy.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

PRIVATE_NAME = "kube.corp.invalid"  # resolvable inside the proxies' namespace only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed "
            "(.ci/run installs them: apt-get install tinyproxy stunnel4 dante-server)"
        )


def require_root_namespaces() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the forward proxy gets a private /etc/hosts through unshare -m and a bind mount")
    require("unshare", "mount")


class ProxyProcess:
    """One proxy process; ``log`` is everything it wrote (stdout and stderr)."""

    name = "proxy"

    def __init__(self, workdir: Path, argv: Sequence[str], port: int, hosts: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port
        self.log_path = workdir / f"{self.name}-{port}.log"
        self._argv = list(argv)
        self._hosts = hosts
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = self._argv
        if self._hosts is not None:
            hosts = self.workdir / f"hosts-{self.port}"
            hosts.write_text(
                "127.0.0.1 localhost\n::1 localhost\n" + "".join(f"{ip} {name}\n" for name, ip in self._hosts.items())
            )
            hosts.chmod(0o644)
            # unshare execs sh, which execs the proxy: the PID we hold is the proxy's.
            argv = [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"',
                str(hosts),
                *argv,
            ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir
            )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """A position in the log; :meth:`since` returns what was logged after it."""
        return len(self.log)

    def since(self, mark: int) -> str:
        return self.log[mark:]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Tinyproxy(ProxyProcess):
    """tinyproxy 1.11: logs ``Request (file descriptor N): CONNECT host:port HTTP/1.1``."""

    name = "tinyproxy"

    def __init__(
        self, workdir: Path, *, auth: tuple[str, str] | None = None, hosts: Mapping[str, str] | None = None
    ) -> None:
        port = free_port()
        conf = workdir / f"tinyproxy-{port}.conf"
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            "LogLevel Connect",
            "MaxClients 100",
            "User nobody",
            "Group nogroup",
        ]
        if auth is not None:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        conf.write_text("\n".join(lines) + "\n")
        super().__init__(workdir, ["tinyproxy", "-d", "-c", str(conf)], port, hosts)


class Stunnel(ProxyProcess):
    """stunnel: TLS on its port, plain TCP to ``target_port`` (a tinyproxy): an https:// proxy."""

    name = "stunnel"

    def __init__(self, workdir: Path, target_port: int, cert_pem: bytes, key_pem: bytes) -> None:
        port = free_port()
        cert, key = workdir / f"stunnel-{port}.crt", workdir / f"stunnel-{port}.key"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        key.chmod(0o600)
        conf = workdir / f"stunnel-{port}.conf"
        conf.write_text(
            "\n".join(
                [
                    "foreground = yes",
                    "pid =",
                    "debug = notice",
                    "[https-proxy]",
                    f"accept = 127.0.0.1:{port}",
                    f"connect = 127.0.0.1:{target_port}",
                    f"cert = {cert}",
                    f"key = {key}",
                ]
            )
            + "\n"
        )
        super().__init__(workdir, [shutil.which("stunnel4") or "stunnel", str(conf)], port)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


class Dante(ProxyProcess):
    """Dante's danted, SOCKS5 without authentication, or with ``username`` (RFC 1929
    username/password, checked against the system's users: root only); logs each
    ``tcp/connect``."""

    name = "danted"

    def __init__(self, workdir: Path, *, hosts: Mapping[str, str] | None = None, username: bool = False) -> None:
        port = free_port()
        conf = workdir / f"danted-{port}.conf"
        conf.write_text(
            "\n".join(
                [
                    "logoutput: stderr",
                    f"internal: 127.0.0.1 port = {port}",
                    "external: 127.0.0.1",
                    "clientmethod: none",
                    f"socksmethod: {'username' if username else 'none'}",
                    "user.privileged: root",
                    "user.unprivileged: nobody",
                    "client pass {",
                    "  from: 0.0.0.0/0 to: 0.0.0.0/0",
                    "  log: connect disconnect error",
                    "}",
                    "socks pass {",
                    "  from: 0.0.0.0/0 to: 0.0.0.0/0",
                    "  log: connect disconnect error",
                    "}",
                ]
            )
            + "\n"
        )
        super().__init__(workdir, ["danted", "-f", str(conf)], port, hosts)

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"
