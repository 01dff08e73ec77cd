"""Serving until told to stop: Options built, warnings logged, the server run under signal handlers.

In: :class:`~kproxy.config.flags.Flags` and whether to start the demo cluster first. Out:
the exit code (0 after SIGTERM or SIGINT), stdout's single ``Starting to serve on ADDR``
line once listening, kubectl's start-up warnings and kproxy's notices on stderr through
:data:`kproxy.log.log`. Only the command installs signal handlers: SIGTERM and SIGINT stop
accepting and drain in-flight requests (the server's grace period bounds it), SIGHUP
reloads every file kproxy can reload (:meth:`~kproxy.server.ProxyServer.reload`). The
loop is uvloop's where it is installed. At start, the soft limit of open files is
raised to the hard one, as Go programs do.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.log import NOTICE, log

__all__ = ["raise_open_files_limit", "run"]


def run(flags: Flags, *, demo: bool = False) -> int:
    raise_open_files_limit()
    runner_kwargs: dict[str, Any] = {}
    try:
        import uvloop

        runner_kwargs["loop_factory"] = uvloop.new_event_loop
    except ImportError:  # Windows, or a platform without wheels: asyncio's loop is fine
        pass
    with asyncio.Runner(**runner_kwargs) as runner:
        return runner.run(_serve(flags, demo))


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as every Go program does at start
    since Go 1.19 (os/rlimit.go), kubectl included: a shell's soft 1024 would otherwise
    cap kproxy at some 500 watches (a client and an upstream descriptor each). Returns
    (soft before, soft now); a limit that cannot be raised is left as it is, as Go does."""
    try:
        import resource
    except ImportError:  # not a Unix
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    # Linux refuses "infinity" for this limit (no more than fs.nr_open): its default then.
    for target in (hard,) if hard != infinity else (infinity, 1 << 20):
        if soft == target or (soft != infinity and target != infinity and target < soft):
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.debug("raised the soft limit of open files from %d to %d", soft, target)
        return soft, target
    return soft, soft


async def _serve(flags: Flags, demo: bool) -> int:
    cluster: AbstractAsyncContextManager[Flags] = nullcontext(flags)
    if demo:
        from kproxy.cli.demo import demo_cluster

        cluster = demo_cluster(flags)
    async with cluster as effective:  # with --demo, pointing at the demo cluster
        options = Options.from_flags(effective)
        for warning in options.warnings:
            log.warning("%s", warning)
        for notice in options.notices:
            log.log(NOTICE, "%s", notice)
        await _serve_until_signalled(options)
    return 0


async def _serve_until_signalled(options: Options) -> None:
    from kproxy.server import ProxyServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed before the start-up line: a supervisor may signal as soon as it sees it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = ProxyServer(options)
    # SIGHUP reloads what can be reloaded; without anything to reload it is harmless
    # (kubectl would die of it: Go's default for SIGHUP).
    loop.add_signal_handler(signal.SIGHUP, server.reload)
    try:
        await server.start()
        # What start-up made lives as long as the process: out of the collector's
        # sight. Requests allocate in bursts of short-lived objects; fewer young
        # collections cost less than the cycles they would find early.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        gc.enable()  # off during start-up (kproxy.cli.main)
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
