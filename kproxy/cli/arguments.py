"""The command line: argv parsed from the flag table, with kubectl's spellings, into Flags.

In: argv (after the program name). Out: an ``argparse.Namespace`` with one attribute per
:data:`~kproxy.config.flags.FLAG_TABLE` entry plus the command's own options (``-v``,
``--log-level``, ``--check-ip``, ``--explain-egress``, ``--demo``, ``--version``), and
:func:`flags_from_namespace` turning it into :class:`~kproxy.config.flags.Flags`.

Values are spelled as kubectl (pflag) takes them: Go's ``strconv.ParseBool`` for booleans
(a bare ``--disable-filter`` is true, ``--disable-filter=false`` too is accepted), decimal
integers, Go durations (``30s``, ``1m30s``) via :func:`kproxy.policy.durations.parse_duration`,
and repeated flags for lists. Errors are kubectl's shape: one ``error: ...`` line naming
the flag and the value, then where to look, exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from kproxy._version import __version__
from kproxy.config.flags import FLAG_TABLE, Flag, Flags
from kproxy.errors import ConfigError
from kproxy.policy.durations import parse_duration

__all__ = ["build_parser", "flags_from_namespace"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # kubectl's shape: the error, then where to look, exit 1 (no usage dump).
        self.exit(1, f"error: {message}\nSee 'kproxy --help' for usage.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kproxy",
        description=(
            "Creates a proxy server or application-level gateway between localhost and the "
            "Kubernetes API server. A drop-in for `kubectl proxy`."
        ),
        allow_abbrev=False,
    )
    for flag in FLAG_TABLE:
        _add_flag(parser, flag)
    _add_command_options(parser)
    # kubectl ignores extra positional arguments.
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
    return parser


def flags_from_namespace(ns: argparse.Namespace) -> Flags:
    values = {flag.dest: getattr(ns, flag.dest) for flag in FLAG_TABLE}
    for flag in FLAG_TABLE:
        if flag.kind == "list":
            values[flag.dest] = tuple(values[flag.dest] or ())
    return Flags(**values)


def _add_flag(parser: argparse.ArgumentParser, flag: Flag) -> None:
    names = [f"--{flag.name}"] + ([f"-{flag.short}"] if flag.short else [])
    option = f"--{flag.name}"
    if flag.kind == "bool":
        parser.add_argument(
            *names,
            dest=flag.dest,
            nargs="?",
            const=True,
            default=flag.default,
            type=_bool(option),
            metavar="BOOL",
            help=flag.help,
        )
    elif flag.kind == "int":
        parser.add_argument(*names, dest=flag.dest, type=_int(option), default=flag.default, help=flag.help)
    elif flag.kind == "duration":
        parser.add_argument(
            *names, dest=flag.dest, type=_duration(option), default=flag.default, metavar="DURATION", help=flag.help
        )
    elif flag.kind == "list":
        # None, not the empty tuple: argparse appends to a default list in place.
        parser.add_argument(*names, dest=flag.dest, action="append", default=None, help=flag.help)
    else:
        parser.add_argument(*names, dest=flag.dest, default=flag.default, help=flag.help)


def _add_command_options(parser: argparse.ArgumentParser) -> None:
    """What the command does besides serving, and how much it logs: not settings, not in Flags."""
    parser.add_argument(
        "-v",
        "--v",
        dest="verbosity",
        type=_int("-v"),
        default=0,
        help="Log level number: 2 and up log each request and filter rejections, 5 and up debug.",
    )
    parser.add_argument(
        "--log-level",
        choices=("error", "warning", "info", "debug"),
        default=None,
        help="kproxy: log level by name (overrides -v).",
    )
    parser.add_argument(
        "--check-ip",
        metavar="ADDR",
        default=None,
        help="kproxy: say whether ADDR would be allowed by the authorized IP ranges, and by which range, then exit.",
    )
    parser.add_argument(
        "--explain-egress",
        nargs="*",
        metavar="URL",
        default=None,
        help="kproxy: print how the API server (and each URL given) would be reached: direct or which proxy, "
        "from which setting, by which rule, and which CAs are trusted; then exit.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="kproxy: run against a built-in demo cluster (an in-process fake API server).",
    )
    parser.add_argument("--version", action="version", version=f"kproxy {__version__}")


def _bool(flag: str) -> Callable[[str], bool]:
    def parse(value: str) -> bool:
        # Go's strconv.ParseBool spellings.
        if value in ("1", "t", "T", "true", "TRUE", "True"):
            return True
        if value in ("0", "f", "F", "false", "FALSE", "False"):
            return False
        raise argparse.ArgumentTypeError(f"{flag} {value!r}: use true or false")

    return parse


def _int(flag: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            return int(value, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} {value!r}: not an integer") from None

    return parse


def _duration(flag: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            return parse_duration(flag, value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse
