"""Files that, when they change, reload something: polled, portable, within a second.

In: paths and what to call when one of them changes (its modification time or size,
or whether it exists). Out: a task that polls every ``interval`` seconds until stopped.
Polling, not inotify: it sees atomic renames (cert-manager, Kubernetes secret volumes
swap a symlinked directory), in-place writes and deletions alike, on every platform, and
a second's delay is fine for configuration edits.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

__all__ = ["FileWatch", "stamp"]

Stamp = tuple[float, int, int] | None


def stamp(path: str) -> Stamp:
    """What changes when the file does: (mtime, size, inode), following symlinks."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


class FileWatch:
    """Calls ``changed()`` when any of ``paths`` changes; ``paths`` may change with it."""

    def __init__(self, paths: Callable[[], Iterable[str]], changed: Callable[[], object], interval: float = 1.0):
        self._paths = paths
        self._changed = changed
        self._interval = interval
        self._stamps = self._read()
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> dict[str, Stamp]:
        return {path: stamp(path) for path in self._paths()}

    def settle(self) -> None:
        """Take the files as they are now as seen (after a reload by other means)."""
        self._stamps = self._read()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            stamps = self._read()
            if stamps != self._stamps:
                # Taken before the reload: a write still going on while it reads the file
                # changes the stamps again, and the next look reloads once more.
                self._stamps = stamps
                self._changed()
                if set(self._paths()) != stamps.keys():
                    self._stamps = self._read()  # the reload changed which files count
