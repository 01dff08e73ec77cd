"""kproxy.server.watch: FileWatch sees renames, in-place writes and deletions, and a
change made while the reload reads the file is not missed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kproxy.server.watch import FileWatch
from tests.waiting import until


async def test_renames_writes_and_deletions_are_seen(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("one")
    seen: list[str] = []
    watch = FileWatch(lambda: (str(path),), lambda: seen.append(path.read_text() if path.exists() else "-"), 0.02)
    watch.start()
    try:
        await asyncio.sleep(0.1)
        assert seen == []  # nothing changed
        (tmp_path / "g").write_text("two")
        os.replace(tmp_path / "g", path)
        await until(lambda: seen == ["two"], lambda: seen, timeout=5.0)
        with path.open("a") as f:
            f.write(" more")
        await until(lambda: seen == ["two", "two more"], lambda: seen, timeout=5.0)
        path.unlink()
        await until(lambda: seen[-1:] == ["-"], lambda: seen, timeout=5.0)
    finally:
        watch.stop()


async def test_a_write_during_the_reload_is_reloaded_again(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("old")
    seen: list[str] = []

    def reload() -> None:
        seen.append(path.read_text())
        if len(seen) == 1:  # the writer finishes while the first reload reads
            path.write_text("complete and longer")

    watch = FileWatch(lambda: (str(path),), reload, 0.02)
    watch.start()
    try:
        path.write_text("half")
        await until(lambda: seen[-1:] == ["complete and longer"], lambda: seen, timeout=5.0)
        assert seen == ["half", "complete and longer"]
    finally:
        watch.stop()


async def test_settle_takes_the_files_as_seen(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a")
    seen: list[int] = []
    watch = FileWatch(lambda: (str(path),), lambda: seen.append(1), 0.05)
    watch.start()
    try:
        path.write_text("bb")
        watch.settle()  # e.g. SIGHUP reloaded it already
        await asyncio.sleep(0.2)
        assert seen == []
    finally:
        watch.stop()


async def test_a_change_during_the_reload_is_seen_on_the_next_poll(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("old cert")
    key.write_text("old key")
    seen: list[tuple[str, str]] = []

    def reload() -> None:
        seen.append((cert.read_text(), key.read_text()))
        if len(seen) == 1:
            key.write_text("new key, written while the reload ran")  # the second half of a rotation

    watch = FileWatch(lambda: (str(cert), str(key)), reload, interval=0.05)
    watch.start()
    try:
        cert.write_text("new cert")
        await until(lambda: len(seen) >= 2, lambda: seen, timeout=5.0)
    finally:
        watch.stop()
    assert seen[:2] == [("new cert", "old key"), ("new cert", "new key, written while the reload ran")]
