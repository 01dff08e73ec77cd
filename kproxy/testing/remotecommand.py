"""``exec`` and ``attach`` for the fake API server: the remotecommand protocol and a tiny shell.

Transports, as kubectl 1.32 speaks them (client-go ``tools/remotecommand``):

* **WebSocket** ``v5.channel.k8s.io`` (kubectl's default) and ``v4.channel.k8s.io``: every
  binary message starts with a channel byte, 0 stdin, 1 stdout, 2 stderr, 3 error, 4
  resize (JSON ``{"Width": W, "Height": H}``); v5 adds 255, ``[255, channel]``, with which
  the client half-closes a channel (kubectl sends ``[255, 0]`` at the end of its stdin).
  The server ends the session with the ``Status`` on channel 3 and a close frame 1000,
  which the client reads as the end of every stream.
* **SPDY/3.1** (``X-Stream-Protocol-Version: v4.channel.k8s.io``, v5 treated the same):
  the client opens one stream per channel, typed by its ``streamtype`` header (``error``,
  ``stdin``, ``stdout``, ``stderr``, ``resize``). The server answers each with
  SYN_REPLY, half-closes stdout and stderr at the end, and writes the ``Status`` on the
  error stream before half-closing it.

The ``Status`` on the error channel is kubelet's: ``{"metadata":{},"status":"Success"}``;
for an exit code N, ``Failure`` with reason ``NonZeroExitCode`` and a cause of type
``ExitCode`` whose message is N (kubectl exits with N and prints ``command terminated
with exit code N``); for a command that cannot start, ``InternalError`` with containerd's
wording.

Commands (no real shell; a container's ``/bin/...`` by base name): ``echo [-n] ARGS``,
``cat [FILE...]`` (stdin when no file), ``true``, ``false``, ``sh -c 'exit N'`` or
``sh -c 'SIMPLE COMMAND'``, ``sleep SECONDS``, ``test -d|-f|-e PATH``, ``ls [PATH]``,
``hostname``, ``pwd``, and ``tar`` enough for ``kubectl cp`` both ways (``tar cf - PATH``
and ``tar -xmf - [-C DIR]``, GNU tar's messages) on the container's
:class:`~kproxy.testing.runtime.PodFilesystem`. ``attach`` joins the container's main
process, which prints ``attached to NAMESPACE/POD/CONTAINER`` and then, if stdin is
attached, echoes it until it ends; without stdin it ends at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import posixpath
import shlex
import tarfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from kproxy.testing.runtime import PodFilesystem, UpgradeSession
from kproxy.testing.spdy_session import SpdySession, SpdyStream

__all__ = [
    "EXEC_PROTOCOLS",
    "ByteQueue",
    "ExecRequest",
    "Process",
    "StartError",
    "exit_status",
    "internal_error_status",
    "run_command",
    "serve_spdy",
    "serve_websocket",
    "success_status",
]

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4)  # in the fake's order of preference when a client offers both

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_CHUNK = 32 * 1024  # client-go reads 32 KiB per message; kubelet writes no more at once
_STDIN_LIMIT = 64 << 20  # what ``tar x`` buffers before extracting
_STREAM_WAIT = 10.0  # kubelet waits 30 s for the client to open its SPDY streams
_HANGUP_WAIT = 5.0  # how long the server waits for the client to hang up at the end


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


class Source(Protocol):
    async def read(self) -> bytes: ...


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...


class StartError(Exception):
    """The command could not start (what containerd reports for a missing executable)."""


# -- Status objects on the error channel -------------------------------------------------


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


# -- the process model -------------------------------------------------------------------


class _Empty:
    async def read(self) -> bytes:
        return b""


class ByteQueue:
    """Bytes handed over from a reader task to a process: ``read`` gives ``b""`` at the end."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self.ended = False

    def feed(self, data: bytes) -> None:
        if data and not self.ended:
            self._chunks.append(data)
            self._wakeup.set()

    def end(self) -> None:
        self.ended = True
        self._wakeup.set()

    async def read(self) -> bytes:
        while not self._chunks:
            if self.ended:
                return b""
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._chunks.popleft()


class Process:
    """What a command sees: its arguments, standard streams and the container's files."""

    def __init__(
        self,
        argv: tuple[str, ...],
        stdin: Source | None,
        stdout: Sink,
        stderr: Sink,
        fs: PodFilesystem,
        pod: str,
        namespace: str = "default",
        container: str = "",
    ) -> None:
        self.argv = argv
        self.stdin: Source = stdin if stdin is not None else _Empty()
        self.stdout = stdout
        self.stderr = stderr
        self.fs = fs
        self.pod = pod
        self.namespace = namespace
        self.container = container

    async def out(self, text: str) -> None:
        await self.stdout.write(text.encode())

    async def err(self, text: str) -> None:
        await self.stderr.write(text.encode())

    async def read_stdin(self, limit: int = _STDIN_LIMIT) -> bytes | None:
        """All of stdin, or None past ``limit`` bytes."""
        data = bytearray()
        while chunk := await self.stdin.read():
            data += chunk
            if len(data) > limit:
                return None
        return bytes(data)


Command = Callable[[Process], Awaitable[int]]


async def run_command(process: Process) -> int:
    """Run ``process.argv``; its exit code, or :class:`StartError` if it cannot start."""
    if not process.argv:
        raise StartError("no command given")
    name = posixpath.basename(process.argv[0])
    command = _COMMANDS.get(name)
    if command is None:
        raise StartError(
            f'failed to exec in container: failed to start exec "{process.pod}": OCI runtime exec failed: '
            f'exec failed: unable to start container process: exec: "{process.argv[0]}": '
            "executable file not found in $PATH: unknown"
        )
    return await command(process)


async def _echo(p: Process) -> int:
    args = list(p.argv[1:])
    newline = True
    while args and args[0] in ("-n", "-e", "-E"):
        newline = newline and args.pop(0) != "-n"
    await p.out(" ".join(args) + ("\n" if newline else ""))
    return 0


async def _cat(p: Process) -> int:
    files = list(p.argv[1:]) or ["-"]
    status = 0
    for name in files:
        if name == "-":
            while chunk := await p.stdin.read():
                await p.stdout.write(chunk)
        elif p.fs.is_dir(name):
            await p.err(f"cat: {name}: Is a directory\n")
            status = 1
        elif not p.fs.is_file(name):
            await p.err(f"cat: {name}: No such file or directory\n")
            status = 1
        else:
            await p.stdout.write(p.fs.read(name))
    return status


async def _true(p: Process) -> int:
    return 0


async def _false(p: Process) -> int:
    return 1


async def _hostname(p: Process) -> int:
    await p.out(p.pod + "\n")
    return 0


async def _pwd(p: Process) -> int:
    await p.out("/\n")
    return 0


async def _sleep(p: Process) -> int:
    try:
        seconds = sum(float(arg) for arg in p.argv[1:]) if len(p.argv) > 1 else -1.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        await p.err(f"sleep: invalid time interval '{' '.join(p.argv[1:])}'\n")
        return 1
    await asyncio.sleep(seconds)
    return 0


async def _test(p: Process) -> int:
    args = list(p.argv[1:])
    if posixpath.basename(p.argv[0]) == "[":
        if not args or args[-1] != "]":
            await p.err("sh: missing ]\n")
            return 2
        args.pop()
    if len(args) == 2 and args[0] in ("-d", "-f", "-e"):
        check = {"-d": p.fs.is_dir, "-f": p.fs.is_file, "-e": p.fs.exists}[args[0]]
        return 0 if check(args[1]) else 1
    if len(args) == 1:
        return 0 if args[0] else 1
    await p.err("test: unsupported expression in the fake\n")
    return 2


async def _ls(p: Process) -> int:
    paths = [a for a in p.argv[1:] if not a.startswith("-")] or ["/"]
    status = 0
    for path in paths:
        if p.fs.is_file(path):
            await p.out(path + "\n")
        elif p.fs.is_dir(path):
            names = p.fs.listdir(path)
            await p.out("".join(name + "\n" for name in names))
        else:
            await p.err(f"ls: cannot access '{path}': No such file or directory\n")
            status = 2
    return status


async def _sh(p: Process) -> int:
    args = list(p.argv[1:])
    if len(args) < 2 or args[0] != "-c":
        await p.err("sh: the fake runs only 'sh -c SCRIPT'\n")
        return 2
    script = args[1].strip()
    if any(token in script for token in ("|", ">", "<", "&", ";", "$(", "`")):
        await p.err(f"sh: the fake's shell runs one simple command, not {script!r}\n")
        return 2
    try:
        words = shlex.split(script)
    except ValueError as exc:
        await p.err(f"sh: syntax error: {exc}\n")
        return 2
    if not words:
        return 0
    if words[0] == "exit":
        try:
            return int(words[1]) & 0xFF if len(words) > 1 else 0
        except ValueError:
            await p.err(f"sh: exit: Illegal number: {words[1]}\n")
            return 2
    inner = Process(tuple(words), p.stdin, p.stdout, p.stderr, p.fs, p.pod, p.namespace, p.container)
    try:
        return await run_command(inner)
    except StartError:
        await p.err(f"sh: {words[0]}: not found\n")
        return 127


async def _tar(p: Process) -> int:
    mode = ""
    archive = ""
    directory = "/"
    operands: list[str] = []
    args = list(p.argv[1:])
    first = True
    while args:
        arg = args.pop(0)
        if arg.startswith("--"):
            if arg.startswith("--directory="):
                directory = arg.split("=", 1)[1]
            elif arg == "--directory" and args:
                directory = args.pop(0)
            continue  # --no-same-owner, --no-same-permissions, --warning=...: no effect here
        if arg == "-C":
            if not args:
                await p.err("tar: option requires an argument -- 'C'\n")
                return 2
            directory = args.pop(0)
        elif arg.startswith("-") and len(arg) > 1 or (first and not arg.startswith("-")):
            letters = arg.lstrip("-")
            for i, letter in enumerate(letters):
                if letter in "cxt":
                    mode = letter
                elif letter == "f":
                    rest = letters[i + 1 :]
                    if rest and arg.startswith("-"):
                        archive = rest
                    elif args:
                        archive = args.pop(0)
                    break
                elif letter == "C" and args:
                    directory = args.pop(0)
        else:
            operands.append(arg)
        first = False
    if not mode:
        await p.err("tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\n")
        return 2
    if archive not in ("", "-"):
        await p.err(f"tar: {archive}: the fake reads and writes archives only on stdin/stdout\n")
        return 2
    if not p.fs.is_dir(directory):
        await p.err(
            f"tar: {directory}: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"
        )
        return 2
    if mode == "c":
        return await _tar_create(p, directory, operands)
    return await _tar_extract(p, directory, list_only=mode == "t")


async def _tar_create(p: Process, directory: str, operands: list[str]) -> int:
    if not operands:
        await p.err("tar: Cowardly refusing to create an empty archive\n")
        return 2
    buffer = io.BytesIO()
    failed = False
    warned = False
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for operand in operands:
            path = p.fs.normalize(operand, directory)
            if not p.fs.exists(path):
                await p.err(f"tar: {operand}: Cannot stat: No such file or directory\n")
                failed = True
                continue
            name = posixpath.normpath(operand) if not operand.startswith("/") else path
            if name.startswith("/"):
                if not warned:
                    await p.err("tar: Removing leading `/' from member names\n")
                    warned = True
                name = name.lstrip("/") or "."
            _add_to_tar(archive, p.fs, path, name)
    await p.stdout.write(buffer.getvalue())
    if failed:
        await p.err("tar: Exiting with failure status due to previous errors\n")
        return 2
    return 0


def _add_to_tar(archive: tarfile.TarFile, fs: PodFilesystem, path: str, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = int(fs.mtimes.get(path, time.time()))
    info.uname = info.gname = "root"
    if fs.is_dir(path):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        archive.addfile(info)
        for child in fs.listdir(path):
            _add_to_tar(archive, fs, posixpath.join(path, child), posixpath.join(name, child))
    else:
        data = fs.read(path)
        info.mode = 0o644
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


async def _tar_extract(p: Process, directory: str, list_only: bool) -> int:
    data = await p.read_stdin()
    if data is None:
        await p.err("tar: archive larger than the fake accepts\n")
        return 2
    if not data.strip(b"\x00"):
        if not data:
            await p.err(
                "tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n"
            )
            return 2
        return 0  # only end-of-archive blocks: an empty archive
    failed = False
    warned = False
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                name = member.name
                if name.startswith("/"):
                    if not warned:
                        await p.err("tar: Removing leading `/' from member names\n")
                        warned = True
                    name = name.lstrip("/")
                if ".." in name.split("/"):
                    await p.err(f"tar: {member.name}: Member name contains '..'\n")
                    failed = True
                    continue
                if list_only:
                    await p.out(name + ("/" if member.isdir() and not name.endswith("/") else "") + "\n")
                    continue
                target = p.fs.normalize(name, directory)
                try:
                    if member.isdir():
                        p.fs.mkdir(target)
                    elif member.isreg():
                        p.fs.mkdir(posixpath.dirname(target))
                        extracted = archive.extractfile(member)
                        p.fs.write(target, extracted.read() if extracted is not None else b"")
                    # links, devices and fifos: not in the fake's filesystem
                except (NotADirectoryError, IsADirectoryError, FileNotFoundError):
                    await p.err(f"tar: {name}: Cannot open: Not a directory\n")
                    failed = True
    except tarfile.TarError as exc:
        await p.err(f"tar: {exc}\ntar: Error is not recoverable: exiting now\n")
        return 2
    if failed:
        await p.err("tar: Exiting with failure status due to previous errors\n")
        return 2
    return 0


_COMMANDS: dict[str, Command] = {
    "echo": _echo,
    "cat": _cat,
    "true": _true,
    "false": _false,
    "hostname": _hostname,
    "pwd": _pwd,
    "sleep": _sleep,
    "test": _test,
    "[": _test,
    "ls": _ls,
    "sh": _sh,
    "bash": _sh,
    "tar": _tar,
}


async def _attach_main(p: Process) -> int:
    """The container's main process as ``attach`` sees it (see the module docstring)."""
    await p.out(f"attached to {p.namespace}/{p.pod}/{p.container}\n")
    while chunk := await p.stdin.read():
        await p.stdout.write(chunk)
    return 0


# -- running a session over a transport -------------------------------------------------


class _Streams(Protocol):
    stdin: Source | None
    stdout: Sink
    stderr: Sink
    gone: asyncio.Event  # the client went away

    async def finish(self, status: dict[str, Any]) -> None: ...


async def _run(req: ExecRequest, streams: _Streams, fs: PodFilesystem, record: UpgradeSession) -> None:
    process = Process(
        req.command, streams.stdin, streams.stdout, streams.stderr, fs, req.pod, req.namespace, req.container
    )
    main = _attach_main(process) if req.kind == "attach" else run_command(process)
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


class _ChannelSink:
    def __init__(self, ws: web.WebSocketResponse, channel: int) -> None:
        self._ws = ws
        self._prefix = bytes([channel])

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), _CHUNK):
            if self._ws.closed:
                return
            try:
                await self._ws.send_bytes(self._prefix + data[start : start + _CHUNK])
            except ConnectionError:
                return


class _WebSocketStreams:
    """The channel protocol (v4/v5) on an aiohttp WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, req: ExecRequest, record: UpgradeSession) -> None:
        self._ws = ws
        self._v5 = ws.ws_protocol == V5
        self._record = record
        self._stdin = ByteQueue()
        if not req.stdin:
            self._stdin.end()
        self.stdin: Source | None = self._stdin if req.stdin else None
        self.stdout: Sink = _ChannelSink(ws, STDOUT)
        self.stderr: Sink = self.stdout if req.tty else _ChannelSink(ws, STDERR)
        self.gone = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type == WSMsgType.BINARY:
                    data: bytes = msg.data
                    if not data:
                        continue
                    channel, payload = data[0], data[1:]
                    if channel == STDIN:
                        self._stdin.feed(payload)
                    elif channel == RESIZE:
                        _record_resize(self._record, payload)
                    elif channel == CLOSE and self._v5 and payload[:1] == bytes([STDIN]):
                        self._stdin.end()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                # TEXT: the base64 protocols, which the fake does not offer
        finally:
            self._stdin.end()
            self.gone.set()

    async def finish(self, status: dict[str, Any]) -> None:
        await _ChannelSink(self._ws, ERROR).write(json.dumps(status, separators=(",", ":")).encode())
        # A normal closure: the client reads it as the end of every channel. close()
        # waits (up to the response's timeout) for the client's close frame.
        await self._ws.close(code=1000)

    async def aclose(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def _record_resize(record: UpgradeSession, payload: bytes) -> None:
    for line in payload.splitlines():
        try:
            size = json.loads(line)
            record.resizes.append((int(size["Width"]), int(size["Height"])))
        except (ValueError, KeyError, TypeError):
            continue


async def serve_websocket(
    ws: web.WebSocketResponse, req: ExecRequest, fs: PodFilesystem, record: UpgradeSession
) -> None:
    """Run one exec/attach over a prepared WebSocket (v4 or v5) until it ends."""
    streams = _WebSocketStreams(ws, req, record)
    try:
        await _run(req, streams, fs, record)
    finally:
        await streams.aclose()


class _SpdyStreams:
    """The streams kubectl opens on a SPDY connection, one per channel."""

    def __init__(self, session: SpdySession, streams: dict[str, SpdyStream], req: ExecRequest) -> None:
        self._session = session
        self._streams = streams
        self.stdin: Source | None = streams.get("stdin")
        out = streams.get("stdout")
        err = streams.get("stderr")
        self.stdout: Sink = out if out is not None else _Discard()
        self.stderr: Sink = err if err is not None else (self.stdout if req.tty else _Discard())
        self.gone = session.ended

    async def finish(self, status: dict[str, Any]) -> None:
        for kind in ("stdout", "stderr"):
            stream = self._streams.get(kind)
            if stream is not None:
                await stream.close()
        error = self._streams["error"]
        await error.write(json.dumps(status, separators=(",", ":")).encode(), fin=True)
        stdin = self._streams.get("stdin")
        if stdin is not None:
            await stdin.close()  # client-go waits for the server to close remote stdin


class _Discard:
    async def write(self, data: bytes) -> None:
        return None


async def _accept_streams(
    session: SpdySession, req: ExecRequest, record: UpgradeSession
) -> dict[str, SpdyStream] | None:
    expected = {"error"}
    if req.stdin:
        expected.add("stdin")
    if req.stdout:
        expected.add("stdout")
    if req.stderr and not req.tty:
        expected.add("stderr")
    if req.tty:
        expected.add("resize")
    got: dict[str, SpdyStream] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STREAM_WAIT
    while set(got) != expected:
        try:
            stream = await asyncio.wait_for(session.accept(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return None  # kubelet: "timed out waiting for client to create streams"
        if stream is None:
            return None
        kind = stream.header("streamtype")
        await stream.reply()
        if kind in expected and kind not in got:
            got[kind] = stream
        else:
            await stream.reset()
    return got


async def _read_resizes(stream: SpdyStream, record: UpgradeSession) -> None:
    pending = b""
    while chunk := await stream.read():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            _record_resize(record, line)


async def _refuse_more(session: SpdySession) -> None:
    while (stream := await session.accept()) is not None:
        await stream.reply()
        await stream.reset()


async def serve_spdy(session: SpdySession, req: ExecRequest, fs: PodFilesystem, record: UpgradeSession) -> None:
    """Run one exec/attach over a SPDY session until it ends (the caller closes the session)."""
    streams = await _accept_streams(session, req, record)
    if streams is None:
        return
    helpers = [asyncio.ensure_future(_refuse_more(session))]
    if "resize" in streams:
        helpers.append(asyncio.ensure_future(_read_resizes(streams["resize"], record)))
    try:
        await _run(req, _SpdyStreams(session, streams, req), fs, record)
        await session.flush()
        # The client hangs up once it has read the error stream to its end.
        try:
            await asyncio.wait_for(session.ended.wait(), _HANGUP_WAIT)
        except TimeoutError:
            pass
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
