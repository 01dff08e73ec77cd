"""kproxy.server.watch: FileWatch sees a change made while its reload reads the files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kproxy.server.watch import FileWatch


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
        for _ in range(100):
            if len(seen) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        watch.stop()
    assert seen[:2] == [("new cert", "old key"), ("new cert", "new key, written while the reload ran")]
