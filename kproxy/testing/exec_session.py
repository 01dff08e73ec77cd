"""``exec`` and ``attach`` for the fake API server, whatever the transport: the request, the run, the Status.

Transports, as kubectl 1.32 speaks them (client-go ``tools/remotecommand``):

* **WebSocket** ``v5.channel.k8s.io`` (kubectl's default) and ``v4.channel.k8s.io``: every
  binary message starts with a channel byte (``exec_websocket``);
* **SPDY/3.1** (``X-Stream-Protocol-Version: v4.channel.k8s.io``, v5 treated the same):
  one stream per channel (``exec_spdy``).

Each adapter hands :func:`run_session` its streams (:class:`ExecStreams`); the process
(``shell``) runs on them until it exits or the client goes away, and the adapter sends
the ``Status`` that ends the session. The ``Status`` is kubelet's:
``{"metadata":{},"status":"Success"}``; for an exit code N, ``Failure`` with reason
``NonZeroExitCode`` and a cause of type ``ExitCode`` whose message is N (kubectl exits
with N and prints ``command terminated with exit code N``); for a command that cannot
start, ``InternalError`` with containerd's wording.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

from kproxy.testing.process import Process, Sink, Source
from kproxy.testing.runtime import Network, PodFilesystem, UpgradeSession
from kproxy.testing.shell import StartError, attach_main, run_command

__all__ = [
    "EXEC_PROTOCOLS",
    "ExecRequest",
    "ExecStreams",
    "exit_status",
    "internal_error_status",
    "record_resize",
    "run_session",
    "success_status",
]

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4)  # in the fake's order of preference when a client offers both


@dataclass(frozen=True)
class ExecRequest:
    """The parsed ``PodExecOptions`` / ``PodAttachOptions`` of an upgrade request."""

    kind: str  # exec | attach
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(command: tuple[str, ...], code: int) -> dict[str, Any]:
    argv = "[" + " ".join(command) + "]"  # Go's %v of a []string
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {argv}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


class ExecStreams(Protocol):
    """What a transport adapter gives :func:`run_session`: the process's standard streams
    (no stdin when the client attached none), the client's departure, and the end."""

    stdin: Source | None
    stdout: Sink
    stderr: Sink
    gone: asyncio.Event  # the client went away

    async def finish(self, status: dict[str, Any]) -> None:
        """Send the ``Status`` that ends the session, and close what the transport closes."""


async def run_session(
    req: ExecRequest, streams: ExecStreams, fs: PodFilesystem, record: UpgradeSession, network: Network | None = None
) -> None:
    """Run the command (or, for ``attach``, the main process) on ``streams`` until it exits,
    then send its ``Status``; if the client goes away first, cancel the process."""
    process = Process(
        req.command, streams.stdin, streams.stdout, streams.stderr, fs, req.pod, req.namespace, req.container
    )
    process.network = network
    main = attach_main(process) if req.kind == "attach" and not req.command else run_command(process)
    task = asyncio.ensure_future(main)
    gone = asyncio.ensure_future(streams.gone.wait())
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            return  # the client left: the process is killed (finally)
        try:
            code = task.result()
        except StartError as exc:
            status = internal_error_status(str(exc))
        else:
            record.exit_code = code
            status = success_status() if code == 0 else exit_status(req.command, code)
        await streams.finish(status)
    finally:
        for t in (task, gone):
            t.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)


def record_resize(record: UpgradeSession, payload: bytes) -> None:
    """Note each ``{"Width": W, "Height": H}`` line of a resize message; others are skipped."""
    for line in payload.splitlines():
        try:
            size = json.loads(line)
            record.resizes.append((int(size["Width"]), int(size["Height"])))
        except (ValueError, KeyError, TypeError):
            continue
