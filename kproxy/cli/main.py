"""The ``kproxy`` command: argv → :class:`~kproxy.config.flags.Flags` → Options → a running server.

In: argv. Out: the exit code. Dispatch only: the subcommands ``cluster-info`` and ``url``
(:mod:`kproxy.cli.cluster_info`), else the flags (:mod:`kproxy.cli.arguments`), logging
(:mod:`kproxy.cli.klog`) and one of ``--check-ip`` (:mod:`kproxy.cli.check_ip`),
``--explain-egress`` (:mod:`kproxy.cli.explain`) or serving (:mod:`kproxy.cli.run`, with
``--demo``'s cluster from :mod:`kproxy.cli.demo`).

Output: stdout gets exactly ``Starting to serve on ADDR`` once listening; stderr gets
kubectl's start-up warnings (klog-formatted), errors (one ``error: ...`` line, exit 1),
and with ``-v`` more.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

from kproxy.errors import ConfigError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Long imports are done here, each where it is needed: ``--version`` prints before
    any of the proxy is imported, and serving imports nothing the first request does
    not need."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from kproxy._version import __version__

        print(f"kproxy {__version__}")
        return 0
    if args and args[0] in ("cluster-info", "url"):
        from kproxy.cli.cluster_info import main_cluster_info, main_url

        return (main_cluster_info if args[0] == "cluster-info" else main_url)(args[1:])
    # Start-up makes objects that live as long as the process and frees few: the cyclic
    # collector would only walk them, again and again (docs/startup.md §5). It is back on
    # once serving (kproxy.cli.run), and as it was when main returns.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(args)
    finally:
        if collecting:
            gc.enable()


def _main(args: list[str]) -> int:
    from kproxy.cli.arguments import build_parser, flags_from_namespace
    from kproxy.cli.klog import setup_logging

    ns = build_parser().parse_args(args)
    setup_logging(ns.verbosity, ns.log_level)
    try:
        if ns.check_ip is not None:
            from kproxy.cli.check_ip import check_ip

            return check_ip(ns.check_ip, ns.authorized_ip_ranges, ns.authorized_ip_ranges_file)
        flags = flags_from_namespace(ns)
        if ns.explain_egress is not None:
            from kproxy.cli.explain import explain_egress
            from kproxy.config.options import Options

            print("\n".join(explain_egress(Options.from_flags(flags), ns.explain_egress)))
            return 0
        from kproxy.cli.run import run

        return run(flags, demo=ns.demo)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
