"""``tar`` in the fake's containers: enough of GNU tar for ``kubectl cp`` both ways.

kubectl cp copies out of a container with ``tar cf - PATH`` and into one with
``tar -xmf - [-C DIR]`` (plus GNU long options such as ``--no-same-owner``, which have
no effect here); ``tar tf -`` lists. Archives go only through stdin and stdout, in GNU
format, over the container's :class:`~kproxy.testing.runtime.PodFilesystem`: member
names as given, a leading ``/`` removed (with GNU tar's ``Removing leading `/' from
member names``), each directory before its contents; extraction refuses names with
``..``. The messages and the exit status 2 on failure are GNU tar's. Links, devices and fifos are neither
written nor extracted: the fake's filesystem holds only files and directories.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time

from kproxy.testing.process import Process
from kproxy.testing.runtime import PodFilesystem

__all__ = ["tar"]


async def tar(p: Process) -> int:
    """Parse GNU tar's options (bundled letters, ``-C DIR``, ``--directory``), then create,
    extract or list."""
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
