"""What runs "inside" the fake API server's pods: files, forwarded ports, live sessions.

There are no containers behind the fake, so ``exec``, ``attach``, ``cp`` and
``port-forward`` are served from here:

* :class:`PodFilesystem`: an in-memory tree per container (``/``, ``/tmp``, ``/etc``,
  ``/etc/hostname``, ``/root`` to start with), for the commands of ``shell`` and ``tar``
  (``cat FILE``, ``tar`` for ``kubectl cp``, ``test -d``).
* Port targets: a test maps a pod's port to a TCP address it listens on
  (:meth:`PodRuntime.forward_port`); ``portforward`` connects streams there.
* :class:`UpgradeSession`: every upgraded connection as the fake saw it, with the
  transport actually used (``websocket`` or ``spdy``: kubectl falls back from one to the
  other silently, so tests assert it), the negotiated subprotocol, the command, terminal
  resizes, the exit code, and whether it is still open. :meth:`PodRuntime.abort_sessions`
  resets every open one, as an API server that dies mid-session would;
  :meth:`PodRuntime.close_sessions` closes them in an orderly way instead.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["PodFilesystem", "PodRuntime", "UpgradeSession"]


class PodFilesystem:
    """Directories and regular files of one container, by absolute normalised path."""

    def __init__(self, hostname: str = "") -> None:
        self.dirs: set[str] = {"/", "/tmp", "/etc", "/root"}
        self.files: dict[str, bytes] = {}
        self.mtimes: dict[str, float] = {}
        if hostname:
            self.write("/etc/hostname", hostname.encode() + b"\n")

    @staticmethod
    def normalize(path: str, cwd: str = "/") -> str:
        return posixpath.normpath(posixpath.join(cwd, path)).replace("//", "/")

    def is_dir(self, path: str) -> bool:
        return self.normalize(path) in self.dirs

    def is_file(self, path: str) -> bool:
        return self.normalize(path) in self.files

    def exists(self, path: str) -> bool:
        return self.is_dir(path) or self.is_file(path)

    def read(self, path: str) -> bytes:
        return self.files[self.normalize(path)]

    def mkdir(self, path: str) -> None:
        """``mkdir -p``; raises NotADirectoryError when a file is in the way."""
        path = self.normalize(path)
        parts = [p for p in path.split("/") if p]
        current = "/"
        for part in parts:
            current = posixpath.join(current, part)
            if current in self.files:
                raise NotADirectoryError(current)
            if current not in self.dirs:
                self.dirs.add(current)
                self.mtimes[current] = time.time()

    def write(self, path: str, data: bytes) -> None:
        """Create or replace a file; its directory must exist."""
        path = self.normalize(path)
        parent = posixpath.dirname(path)
        if parent not in self.dirs:
            raise FileNotFoundError(parent)
        if path in self.dirs:
            raise IsADirectoryError(path)
        self.files[path] = data
        self.mtimes[path] = time.time()

    def listdir(self, path: str) -> list[str]:
        path = self.normalize(path)
        if path not in self.dirs:
            raise FileNotFoundError(path)
        prefix = path.rstrip("/") + "/"
        names = {
            p[len(prefix) :].split("/", 1)[0] for p in (*self.dirs, *self.files) if p.startswith(prefix) and p != path
        }
        return sorted(names)


@dataclass
class UpgradeSession:
    """One upgraded exec/attach/portforward connection, as the fake served it."""

    kind: str  # exec | attach | portforward | raw
    namespace: str
    pod: str
    transport: str  # websocket | spdy
    protocol: str  # the negotiated subprotocol ("" when none)
    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    tty: bool = False
    resizes: list[tuple[int, int]] = field(default_factory=list)
    exit_code: int | None = None
    connections: int = 0  # port-forward: TCP connections made to the target
    open: bool = True
    started: float = field(default_factory=time.monotonic)
    _connection: asyncio.BaseTransport | None = field(default=None, repr=False)

    def abort(self) -> None:
        """Cut the connection at once: a TCP reset, no close frame, no GOAWAY."""
        if self._connection is not None and not self._connection.is_closing():
            abort = getattr(self._connection, "abort", None)
            if abort is not None:
                abort()
            else:
                self._connection.close()

    def close(self) -> None:
        """Close the connection in an orderly way (TLS close_notify, FIN), mid-session."""
        if self._connection is not None and not self._connection.is_closing():
            self._connection.close()


class Network(Protocol):
    """What a pod's port and a process's dial reach (``pod_network.PodNetwork``)."""

    async def resolve(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None: ...

    async def lookup(self, host: str, port: int, namespace: str, pod: str) -> tuple[str, int] | None: ...


class PodRuntime:
    """The state behind the fake's pods; one per :class:`FakeAPIServer` (``api.runtime``)."""

    def __init__(self) -> None:
        self.network: Network | None = None  # the stand-in servers; set by the server
        self.sessions: list[UpgradeSession] = []
        self._filesystems: dict[tuple[str, str, str], PodFilesystem] = {}
        self._ports: dict[tuple[str, str, int], tuple[str, int]] = {}

    def filesystem(self, namespace: str, pod: str, container: str) -> PodFilesystem:
        key = (namespace, pod, container)
        fs = self._filesystems.get(key)
        if fs is None:
            fs = self._filesystems[key] = PodFilesystem(hostname=pod)
        return fs

    def forward_port(self, namespace: str, pod: str, port: int, host: str, target_port: int) -> None:
        """Make connections to ``pod:port`` through port-forward reach ``host:target_port``."""
        self._ports[(namespace, pod, port)] = (host, target_port)

    def port_target(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
        return self._ports.get((namespace, pod, port))

    async def resolve(self, namespace: str, pod: str, port: int) -> tuple[str, int] | None:
        """Where ``pod:port`` leads: a test's mapping, else the pod's stand-in server, else None."""
        mapped = self.port_target(namespace, pod, port)
        if mapped is None and self.network is not None:
            mapped = await self.network.resolve(namespace, pod, port)
        return mapped

    def start(self, session: UpgradeSession, connection: asyncio.BaseTransport | None) -> UpgradeSession:
        session._connection = connection
        self.sessions.append(session)
        return session

    @staticmethod
    def finish(session: UpgradeSession) -> None:
        session.open = False
        session._connection = None

    def open_sessions(self) -> int:
        return sum(1 for s in self.sessions if s.open)

    def abort_sessions(self) -> int:
        """Reset every open upgraded connection; returns how many were cut."""
        open_sessions = [s for s in self.sessions if s.open]
        for session in open_sessions:
            session.abort()
        return len(open_sessions)

    def close_sessions(self) -> int:
        """Close every open upgraded connection in an orderly way; returns how many."""
        open_sessions = [s for s in self.sessions if s.open]
        for session in open_sessions:
            session.close()
        return len(open_sessions)
