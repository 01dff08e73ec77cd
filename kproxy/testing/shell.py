"""The fake's pretend shell: the commands its containers can run, by the base name of argv[0].

There is no real shell: ``echo [-n] ARGS``, ``cat [FILE...]`` (stdin when no file),
``true``, ``false``, ``sh -c 'exit N'`` or ``sh -c 'SIMPLE COMMAND'`` (``bash`` too),
``sleep SECONDS``, ``test -d|-f|-e PATH`` (and ``[``), ``ls [PATH]``, ``hostname``,
``pwd``, ``curl`` and ``wget`` (module ``net_commands``), and ``tar`` (module ``tar``,
for ``kubectl cp``), on the container's
:class:`~kproxy.testing.runtime.PodFilesystem`. A command that does not exist cannot
start (:class:`StartError`, with containerd's wording); ``sh -c`` reports it as
``not found`` and exits 127 instead. ``attach`` joins the container's main
process, :func:`attach_main`, which prints ``attached to NAMESPACE/POD/CONTAINER`` and
then, if stdin is attached, echoes it until it ends; without stdin it ends at once.
"""

from __future__ import annotations

import asyncio
import posixpath
import shlex

from kproxy.testing.net_commands import curl, wget
from kproxy.testing.process import Command, Process
from kproxy.testing.tar import tar

__all__ = ["StartError", "attach_main", "run_command"]


class StartError(Exception):
    """The command could not start (what containerd reports for a missing executable)."""


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
    inner.network = p.network
    try:
        return await run_command(inner)
    except StartError:
        await p.err(f"sh: {words[0]}: not found\n")
        return 127


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
    "tar": tar,
    "curl": curl,
    "wget": wget,
}


async def attach_main(p: Process) -> int:
    """The container's main process as ``attach`` sees it (see the module docstring)."""
    await p.out(f"attached to {p.namespace}/{p.pod}/{p.container}\n")
    while chunk := await p.stdin.read():
        await p.stdout.write(chunk)
    return 0
