"""Reading the files named by flags and kubeconfigs, once at start-up (and the ranges file on reload).

In: a path (absolute, or relative to a base directory with ``~`` expanded, as kubectl
resolves flag paths) and what the file is, in words. Out: its bytes, or a
:class:`~kproxy.errors.ConfigError` naming the file and why it cannot be read
(``cannot read kubeconfig /x: No such file or directory``). Also the authorized-ranges
file, parsed, and how it combines with ``--authorized-ip-ranges``.
"""

from __future__ import annotations

import os

from kproxy.errors import ConfigError
from kproxy.policy.ranges import AuthorizedRanges

__all__ = ["combine_ranges", "load_ranges_file", "read_file", "resolve"]


def resolve(base: str, path: str) -> str:
    """``path`` with ``~`` expanded, relative to ``base`` unless absolute."""
    return os.path.join(base, os.path.expanduser(path))


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:  # not pathlib: ~5 M instructions of start-up to import (docs/startup.md §6)
            return file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_ranges_file(path: str) -> AuthorizedRanges:
    """Read an authorized-ranges file (startup and every reload). Raises ConfigError."""
    text = read_file(path, "--authorized-ip-ranges-file").decode("utf-8", "replace")
    return AuthorizedRanges.parse_file_text(text, source=path)


def combine_ranges(flag: AuthorizedRanges, from_file: AuthorizedRanges) -> AuthorizedRanges:
    """The ranges in force: the flag's, then the file's (either may be empty)."""
    return AuthorizedRanges(flag.networks + from_file.networks)
