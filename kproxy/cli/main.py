"""The ``kproxy`` command: argv → :class:`~kproxy.config.options.Flags` → Options → a running server.

One flag table drives parsing, defaults and help. Flag names, short forms and defaults
are kubectl's; values accept kubectl's spellings (``--port=0``, ``--disable-filter=false``,
Go durations such as ``30s`` or ``1m30s``). The CLI alone installs signal handlers:
SIGTERM and SIGINT stop accepting, drain in-flight requests briefly, and exit 0.

Output: stdout gets exactly ``Starting to serve on ADDR`` once listening; stderr gets
kubectl's start-up warnings (klog-formatted), errors, and with ``-v`` more.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from kproxy._version import __version__
from kproxy.config.flags import FLAG_TABLE, Flags
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.log import NOTICE, log
from kproxy.policy.durations import parse_duration

__all__ = ["main"]


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
        names = [f"--{flag.name}"] + ([f"-{flag.short}"] if flag.short else [])
        dest = flag.dest
        option = f"--{flag.name}"
        if flag.kind == "bool":
            parser.add_argument(
                *names,
                dest=dest,
                nargs="?",
                const=True,
                default=flag.default,
                type=_bool(option),
                metavar="BOOL",
                help=flag.help,
            )
        elif flag.kind == "int":
            parser.add_argument(*names, dest=dest, type=_int(option), default=flag.default, help=flag.help)
        elif flag.kind == "duration":
            parser.add_argument(
                *names, dest=dest, type=_duration(option), default=flag.default, metavar="DURATION", help=flag.help
            )
        elif flag.kind == "list":
            parser.add_argument(*names, dest=dest, action="append", default=None, help=flag.help)
        else:
            parser.add_argument(*names, dest=dest, default=flag.default, help=flag.help)
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
    # kubectl ignores extra positional arguments.
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
    return parser


def flags_from_namespace(ns: argparse.Namespace) -> Flags:
    values = {flag.dest: getattr(ns, flag.dest) for flag in FLAG_TABLE}
    for flag in FLAG_TABLE:
        if flag.kind == "list":
            values[flag.dest] = tuple(values[flag.dest] or ())
    return Flags(**values)


class _KlogFormatter(logging.Formatter):
    """klog's header: ``W1122 10:39:28.363215   12740 kproxy] message``."""

    _LEVELS = {"DEBUG": "I", "INFO": "I", "NOTICE": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        level = self._LEVELS.get(record.levelname, "I")
        line = f"{level}{stamp}.{micros:06d} {record.process:7d} kproxy] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _setup_logging(verbosity: int, level_name: str | None) -> None:
    if level_name:
        level = getattr(logging, level_name.upper())
    elif verbosity >= 5:
        level = logging.DEBUG
    elif verbosity >= 2:
        level = logging.INFO
    else:
        level = NOTICE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KlogFormatter())
    root = logging.getLogger("kproxy")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # aiohttp logs malformed client requests with tracebacks; those are the client's
    # problem, answered with 400, and only worth seeing when debugging.
    aio = logging.getLogger("aiohttp")
    aio.handlers[:] = [handler]
    aio.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL)
    aio.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("cluster-info", "url"):
        from kproxy.cli.cluster_info import main_cluster_info, main_url

        return (main_cluster_info if args[0] == "cluster-info" else main_url)(args[1:])
    parser = build_parser()
    ns = parser.parse_args(argv)
    _setup_logging(ns.verbosity, ns.log_level)
    try:
        if ns.check_ip is not None:
            return _check_ip(ns)
        if ns.explain_egress is not None:
            from kproxy.cli.explain import explain_egress

            print("\n".join(explain_egress(Options.from_flags(flags_from_namespace(ns)), ns.explain_egress)))
            return 0
        return _run(ns)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0


def _check_ip(ns: argparse.Namespace) -> int:
    from kproxy.config.options import combine_ranges, load_ranges_file
    from kproxy.policy.ranges import AuthorizedRanges, normalize_address

    try:
        address = normalize_address(ns.check_ip.strip())
    except ValueError:
        raise ConfigError(f"--check-ip {ns.check_ip!r}: not an IP address, e.g. 10.1.2.3 or 2001:db8::1") from None
    ranges = AuthorizedRanges.parse(ns.authorized_ip_ranges)
    if ns.authorized_ip_ranges_file:
        ranges = combine_ranges(ranges, load_ranges_file(os.path.abspath(ns.authorized_ip_ranges_file)))
    if not ranges.enabled:
        print(f"{address} is allowed: no authorized IP ranges are configured (the check is off)")
        return 0
    match = ranges.match(address)
    if match is not None:
        print(f"{address} is allowed by {match}")
        return 0
    print(f"{address} is not in the authorized IP ranges ({ranges.describe()})")
    return 1


def _run(ns: argparse.Namespace) -> int:
    runner_kwargs: dict[str, Any] = {}
    try:
        import uvloop

        runner_kwargs["loop_factory"] = uvloop.new_event_loop
    except ImportError:  # Windows, or a platform without wheels: asyncio's loop is fine
        pass
    with asyncio.Runner(**runner_kwargs) as runner:
        return runner.run(_serve(ns))


async def _serve(ns: argparse.Namespace) -> int:
    from kproxy.server import ProxyServer

    flags = flags_from_namespace(ns)
    demo = None
    demo_dir = None
    try:
        if ns.demo:
            demo, demo_dir, flags = await _start_demo(flags)
        options = Options.from_flags(flags)
        for warning in options.warnings:
            log.warning("%s", warning)
        for notice in options.notices:
            log.log(NOTICE, "%s", notice)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Installed before the start-up line: a supervisor may signal as soon as it sees it.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = ProxyServer(options)
        if options.authorized_ranges_file:
            loop.add_signal_handler(signal.SIGHUP, server.reload_ranges)
        try:
            await server.start()
            # What start-up made lives as long as the process: out of the collector's
            # sight. Requests allocate in bursts of short-lived objects; fewer young
            # collections cost less than the cycles they would find early.
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            print(f"Starting to serve on {server.address}", flush=True)
            await stop.wait()
        finally:
            # Handlers stay during the drain: a repeated signal must not kill the
            # process half-way through a graceful stop (the grace period bounds it).
            await server.close()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
                # We are exiting 0 anyway; a late repeat must not turn that into a kill.
                signal.signal(signum, signal.SIG_IGN)
        return 0
    finally:
        if demo is not None:
            await demo.stop()
        if demo_dir is not None:
            demo_dir.cleanup()


async def _start_demo(flags: Flags) -> tuple[Any, tempfile.TemporaryDirectory[str], Flags]:
    from pathlib import Path

    from kproxy.testing import FakeAPIServer, TestPKI

    if flags.kubeconfig or flags.server:
        raise ConfigError("--demo runs its own cluster: drop --kubeconfig and --server")
    workdir = tempfile.TemporaryDirectory(prefix="kproxy-demo-")
    # Not recording requests: a long-running demo must not grow a list forever.
    api = FakeAPIServer(pki=TestPKI.create(), tokens=("demo-token",), record_requests=False)
    await api.start()
    kubeconfig = api.kubeconfig(Path(workdir.name), auth="token", token="demo-token")
    log.log(NOTICE, "demo cluster: an in-process fake API server at %s (not a real cluster)", api.url)
    from dataclasses import replace

    return api, workdir, replace(flags, kubeconfig=str(kubeconfig))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
