"""File descriptors and the real kproxy process: the soft RLIMIT_NOFILE raised to the
hard one at start (as Go programs do), and, when descriptors run out anyway, the
connections already open still served, accepting paused for a moment, a handful of log
lines instead of one per failed request, and recovery on its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import KproxyProcess, kproxy_cmd
from tests.waiting import until

GUARD = 30.0


@contextlib.asynccontextmanager
async def limited_kproxy(soft: int, hard: int, *args: str) -> AsyncIterator[KproxyProcess]:
    """kproxy started with RLIMIT_NOFILE (soft, hard), as a shell's ``ulimit -n`` would."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    proc = await asyncio.create_subprocess_exec(
        *kproxy_cmd(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=limit,
    )
    kp = KproxyProcess(proc, "")
    assert proc.stdout is not None and proc.stderr is not None

    async def pump() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            kp.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    kp._stderr_task = asyncio.create_task(pump())
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("Starting to serve on "), (line, kp.stderr)
        kp.address = line.removeprefix("Starting to serve on ").strip()
        yield kp
    finally:
        await kp.stop(signal.SIGTERM)


def open_files_limit(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    match = re.search(r"^Max open files\s+(\d+)\s+(\d+)", text, re.MULTILINE)
    assert match is not None, text
    return int(match[1]), int(match[2])


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/version") -> bytes:
    """One request on a kept-alive connection; the status line of its answer."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/limits (Linux)")
async def test_the_soft_limit_is_raised_to_the_hard_one(kubeconfig: Path) -> None:
    async with limited_kproxy(256, 4096, "--port", "0", "--kubeconfig", str(kubeconfig)) as kp:
        assert open_files_limit(kp.proc.pid) == (4096, 4096)


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/PID/fd (Linux)")
async def test_out_of_descriptors_kproxy_keeps_serving_and_recovers(kubeconfig: Path) -> None:
    async with limited_kproxy(64, 64, "--port", "0", "--kubeconfig", str(kubeconfig)) as kp:
        # A client with a kept-alive connection, and a pooled upstream connection behind it.
        first = await asyncio.open_connection("127.0.0.1", kp.port)
        assert await get(*first) == b"HTTP/1.1 200 OK"
        # A crowd takes every descriptor that is left, and more wait in the backlog.
        crowd = [await asyncio.open_connection("127.0.0.1", kp.port) for _ in range(120)]
        fds = f"/proc/{kp.proc.pid}/fd"
        await until(lambda: len(os.listdir(fds)) >= 63, "kproxy at its descriptor limit", timeout=5, step=0.05)
        await asyncio.sleep(1.5)  # several pauses
        # The connection already open is served (on its pooled upstream connection).
        for _ in range(5):
            assert await get(*first) == b"HTTP/1.1 200 OK"
        for _, writer in crowd:
            writer.close()
        # Descriptors come back; accepting resumes on its own: a new client is served.
        for _ in range(int(GUARD / 0.2)):
            try:
                late = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", kp.port), 5)
                status = await get(*late)
                late[1].close()
                if status == b"HTTP/1.1 200 OK":
                    break
            except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"kproxy did not recover; stderr: {kp.stderr}")
        first[1].close()
        await asyncio.sleep(0.2)
        paused = [line for line in kp.stderr_lines if "not accepting new connections" in line]
        assert 1 <= len(paused) <= 2, kp.stderr  # one line per cause per 5 s, not one per attempt
        assert len(kp.stderr_lines) <= 6, kp.stderr
