"""``python -m benchmarks.profile``: where kproxy spends its CPU under the small-GET load.

Sets up the same upstream as the benchmark (nginx, TLS, client certificates), starts
kproxy pinned to the proxy CPU, warms it up, then samples it with py-spy (installed
with pip on demand) by PID while wrk drives it. ``--nonblocking`` sampling does not
pause the process, so the load stays close to the benchmark's. Writes the collapsed
stacks (``profile-<time>.txt``: open in speedscope.app or flamegraph.pl) and prints the
functions with the most samples, by self time and by total time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .config import DEFAULT
from .deps import MissingTool, ensure_tools
from .environment import environment
from .payloads import LIST_PATH, POD_PATH
from .targets import start_proxy
from .wrk import run_wrk

__all__ = ["main", "summarize_collapsed"]


def _ensure_py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=False)
    return shutil.which("py-spy")


def summarize_collapsed(text: str, top: int = 25) -> str:
    """Top frames by self and by total samples from py-spy's ``--format raw`` output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    area: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        area[_area(frames[-1])] += count
        for frame in set(frames):
            total[frame] += count
    samples = max(samples, 1)
    lines = [f"{samples} samples", "", "self %  where (by the innermost frame)"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in area.most_common()]
    lines += ["", "self %  function"]
    lines += [f"{100 * n / samples:6.1f}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "total % function"]
    lines += [f"{100 * n / samples:6.1f}  {frame}" for frame, n in total.most_common(top)]
    return "\n".join(lines)


# Innermost frame → area. Order matters: the first match wins. Native names (C files,
# shared libraries) appear only with --native.
_AREAS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("libc.so",), "libc: read/write syscalls, memcpy, malloc"),
    (("libssl", "libcrypto", "ssl.py", "_ssl.c"), "TLS (OpenSSL via ssl.SSLObject)"),
    (("llhttp", "httptools", "parser.c"), "HTTP parsing (llhttp)"),
    (("kproxy/",), "kproxy"),
    (("aiohttp/", "_http_writer.c", "_http_parser.c", "_helpers_c.c", "_websocket"), "aiohttp"),
    (("multidict", "_multidict.c", "bulk_update.h", "hashtable.h", "identity.h"), "multidict"),
    (("yarl/",), "yarl"),
    (("loop.c", "libuv", "uv_", "uv__", "handles/", "sslproto"), "uvloop/libuv"),
    (("_asynciomodule.c",), "asyncio tasks (C)"),
    # Without --native the event loop's frame stands for everything in C below it.
    (("asyncio/runners.py", "asyncio/base_events.py"), "event loop + everything in C (use --native)"),
    (("asyncio/",), "asyncio (Python)"),
    (
        ("object.h", "libpython", "ceval", "gc_", "obmalloc", "dictobject", "<frozen abc>", "typeobject"),
        "CPython runtime (refcounts, gc, calls)",
    ),
)


def _area(frame: str) -> str:
    for needles, name in _AREAS:
        if any(needle in frame for needle in needles):
            return name
    return "other"


async def _profile(args: argparse.Namespace, py_spy: str) -> Path:
    config = DEFAULT.with_overrides(list_pods=args.list_pods, kproxy_ref=args.kproxy_ref)
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / time.strftime("profile-%Y%m%d-%H%M%S.txt")
    async with environment(config) as env:
        target = await start_proxy(env.procs, "kproxy", "", env.kubeconfig, env.home, env.proxy_cpus, env.kproxy_dir)
        path = LIST_PATH if args.list else POD_PATH
        url = f"http://127.0.0.1:{target.port}{path}"
        conns = 1 if args.list else args.connections
        await run_wrk(url, conns, 1)  # warm-up: pools filled, caches settled
        spy = await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--pid",
            str(target.pid),
            "--duration",
            str(args.seconds),
            "--rate",
            "250",
            "--function",
            "--format",
            "raw",
            "--output",
            str(out),
            # Native stacks need the process paused while it is sampled.
            *(["--native"] if args.native else ["--nonblocking"]),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.sleep(0.5)  # py-spy attaches
            result = await run_wrk(url, conns, args.seconds)
            _, err = await asyncio.wait_for(spy.communicate(), args.seconds + 30)
        finally:
            if spy.returncode is None:
                spy.kill()
                await spy.wait()
        print(f"wrk under py-spy: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms", file=sys.stderr)
        if not out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-800:]}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.profile", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--list", action="store_true", help="profile the 10 MB list (1 connection) instead")
    p.add_argument("--kproxy-ref", help="profile kproxy as committed at this git ref, not the working tree")
    p.add_argument("--native", action="store_true", help="include C frames (uvloop, OpenSSL, the kernel boundary)")
    p.add_argument("--list-pods", type=int, default=DEFAULT.list_pods)
    p.add_argument("--out", type=Path, default=DEFAULT.out_dir)
    args = p.parse_args(argv)
    try:
        ensure_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    py_spy = _ensure_py_spy()
    if py_spy is None:
        print("error: py-spy not found and pip could not install it", file=sys.stderr)
        return 2
    out = asyncio.run(_profile(args, py_spy))
    print(summarize_collapsed(out.read_text()))
    print(f"\ncollapsed stacks: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
