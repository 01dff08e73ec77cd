"""Run ``wrk --latency`` and parse its report.

wrk prints (4.1)::

      1 threads and 64 connections
      ...
      Latency Distribution
         50%    1.40ms
         99%    3.00ms
      223344 requests in 5.00s, 600.00MB read
      Non-2xx or 3xx responses: 12
    Requests/sec:  44668.80
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WrkError", "WrkResult", "parse_wrk", "run_wrk"]

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    bytes_read: float
    errors: int  # socket errors plus non-2xx/3xx responses

    def as_dict(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
        }


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def parse_wrk(text: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text)
        if match is None:
            raise WrkError(f"cannot find {pattern!r} in wrk output:\n{text}")
        return match

    total = find(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read")
    p50 = find(r"\n\s*50%\s+([\d.]+)(us|ms|s|m|h)")
    p99 = find(r"\n\s*99%\s+([\d.]+)(us|ms|s|m|h)")
    rps = find(r"Requests/sec:\s+([\d.]+)")
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket_errors:
        errors += sum(int(v) for v in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        bytes_read=float(total.group(4)) * _SIZE_UNITS[total.group(5)],
        errors=errors,
    )


async def run_wrk(url: str, connections: int, seconds: int, headers: Sequence[str] = ()) -> WrkResult:
    # One thread: wrk shares core 0 with nginx and the upstream; more threads would
    # only fight them. wrk's -d takes whole seconds only.
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, seconds)}s", "--latency", "--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except BaseException:
        # Timed out or cancelled (Ctrl-C): wrk is ours, stop it by its PID.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {text}")
    return parse_wrk(text)
