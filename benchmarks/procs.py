"""Processes the harness starts, kept by PID and stopped by PID; readings from /proc.

Every child is started through :class:`ProcessSet`, which remembers it until it is
stopped; ``stop_all`` (called from ``finally``) sends SIGTERM to each PID, then SIGKILL
after a grace period. Nothing is ever stopped by name. Pinning uses ``taskset``, which
execs the command, so the PID we keep is the command's own and every thread it starts
is pinned from the first instruction.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "CLK_TCK",
    "Child",
    "ProcessSet",
    "cpu_seconds",
    "pin_self",
    "rss_mb",
    "tree_pids",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    first_line: asyncio.Future[str]  # "" if stdout closed before a first line
    log_path: Path
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class ProcessSet:
    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[Child] = []
        self._taskset = shutil.which("taskset")

    @property
    def has_taskset(self) -> bool:
        return self._taskset is not None

    async def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        cpus: Iterable[int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        argv = list(cmd)
        if cpus is not None and self._taskset is not None:
            argv = [self._taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *argv]
        log_path = self._log_dir / f"{name}.log"
        # A local file, opened once per child: not worth a thread.
        log: IO[bytes] = open(log_path, "ab")  # noqa: ASYNC230
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        finally:
            log.close()  # the child holds its own copy of the descriptor
        loop = asyncio.get_running_loop()
        child = Child(name, proc, loop.create_future(), log_path)
        self._children.append(child)
        child._drain = asyncio.create_task(_drain_stdout(child))
        return child

    async def stop(self, child: Child, grace: float = 10.0) -> int | None:
        if child.alive:
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(child.proc.wait(), grace)
            except TimeoutError:
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await child.proc.wait()
        if child._drain is not None:
            try:
                await asyncio.wait_for(child._drain, 2)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if child in self._children:
            self._children.remove(child)
        return child.proc.returncode

    async def stop_all(self) -> None:
        # Newest first: proxies before the upstream they talk to.
        for child in reversed(list(self._children)):
            await self.stop(child)


async def _drain_stdout(child: Child) -> None:
    """Hand the first stdout line to ``first_line``; keep reading so the pipe never fills."""
    assert child.proc.stdout is not None
    with open(child.log_path, "ab") as log:  # noqa: ASYNC230 - local, once per child
        async for raw in child.proc.stdout:
            if not child.first_line.done():
                child.first_line.set_result(raw.decode(errors="replace").strip())
            log.write(b"stdout: " + raw)
    if not child.first_line.done():
        child.first_line.set_result("")  # exited (or closed stdout) without a line


def pin_self(cpus: Iterable[int]) -> None:
    os.sched_setaffinity(0, set(cpus))


# -- /proc readings -------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, by scanning every process's parent PID."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """User+system CPU of ``root``'s process tree, including reaped children.

    Counting cutime/cstime as well keeps the sum steady when a child exits and is
    reaped: its time moves from its own entry to its parent's, not out of the tree.
    """
    return sum(cpu_user_system(root))


def cpu_user_system(root: int) -> tuple[float, float]:
    """:func:`cpu_seconds`, as user and system CPU apart."""
    user = system = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            # fields[11:15] are utime, stime, cutime, cstime (stat(5) fields 14-17).
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


def rss_mb(root: int, key: str = "VmRSS") -> float:
    """Sum of ``key`` (VmRSS, or VmHWM for the peak) over the process tree, in MB."""
    total_kb = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb / 1024


def tcp_connections(root: int, remote_port: int) -> int:
    """Established TCP connections of ``root``'s process tree to 127.0.0.1:``remote_port``
    (sockets found by inode in /proc/PID/fd and /proc/net/tcp{,6}): a proxy's upstream
    connections, each one a TLS handshake when it was made."""
    inodes: set[str] = set()
    for pid in tree_pids(root):
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(fd.path)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # rem_address is HEX_IP:HEX_PORT; state 01 is ESTABLISHED; field 9 the inode.
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == remote_port and fields[9] in inodes:
                count += 1
    return count
