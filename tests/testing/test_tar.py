"""``tar`` in the fake API server's containers (``kproxy.testing.tar``), without kubectl.

``kubectl cp`` both ways is tested through kproxy in ``tests/integration/test_exec.py``;
this checks the archive itself: member names and order as GNU tar writes them, and
extraction under another directory.
"""

from __future__ import annotations

import io
import tarfile

from kproxy.testing.process import ByteQueue, Process
from kproxy.testing.runtime import PodFilesystem
from kproxy.testing.shell import run_command

POD = "nginx-7c5ddbdf54-2xkqw"


async def test_tar_members_as_gnu_tar_writes_them() -> None:
    # What ``tar cf - /tmp/d`` produces, checked without kubectl: names relative, dirs first.
    fs = PodFilesystem(hostname=POD)
    fs.mkdir("/tmp/d/e")
    fs.write("/tmp/d/e/f.txt", b"f")
    out, err = Buffer(), Buffer()
    code = await run_command(Process(("tar", "cf", "-", "/tmp/d"), None, out, err, fs, POD))
    assert code == 0 and err.data == b"tar: Removing leading `/' from member names\n"
    with tarfile.open(fileobj=io.BytesIO(bytes(out.data))) as archive:
        assert [(m.name, m.isdir()) for m in archive] == [("tmp/d", True), ("tmp/d/e", True), ("tmp/d/e/f.txt", False)]
    # And back in, under another directory, as ``kubectl cp`` runs it.
    fs.mkdir("/restore")
    stdin = ByteQueue()
    stdin.feed(bytes(out.data))
    stdin.end()
    code = await run_command(Process(("tar", "-xmf", "-", "-C", "/restore"), stdin, Buffer(), err, fs, POD))
    assert code == 0 and fs.read("/restore/tmp/d/e/f.txt") == b"f"


class Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data
