"""The progress line: ``[ 37%] round 2/5 · small GET c=64 · kproxy · 3:12 elapsed, ~5:20 left``.

On a terminal it rewrites one line on stderr; otherwise (CI logs) it prints one line per
step, so a log shows how far a run got.
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total_steps: int, estimate_s: float) -> None:
        self._total = max(1, total_steps)
        self._done = 0
        self._estimate = estimate_s
        self._start = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._width = 0

    def step(self, label: str) -> None:
        """Announce the step about to run (``label``); the previous one is done."""
        elapsed = time.monotonic() - self._start
        fraction = self._done / self._total
        # Steps differ in length (starting a proxy vs a wrk run), so the pace of the first
        # few says little: blend from the config's estimate to the observed pace.
        paced = elapsed / fraction if fraction > 0 else self._estimate
        weight = min(1.0, fraction / 0.3)
        expected_total = weight * paced + (1 - weight) * self._estimate
        line = f"[{100 * fraction:3.0f}%] {label} · {_clock(elapsed)} elapsed, ~{_clock(expected_total - elapsed)} left"
        self._done += 1
        self._write(line)

    def note(self, text: str) -> None:
        self._write(text, keep=True)

    def finish(self, text: str) -> None:
        self._write(f"{text} in {_clock(time.monotonic() - self._start)}", keep=True)

    def _write(self, line: str, keep: bool = False) -> None:
        if self._tty:
            pad = " " * max(0, self._width - len(line))
            sys.stderr.write("\r" + line + pad + ("\n" if keep else ""))
            self._width = 0 if keep else len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
