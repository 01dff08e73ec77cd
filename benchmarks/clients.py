"""asyncio clients the harness drives itself (wrk covers plain request load).

* :func:`http_get`: one request, ``Connection: close``; for checks and the start-up probe.
* :class:`WatchFleet`: many concurrent watch streams on bare asyncio protocols (cheap
  enough that 1,000 streams cost the harness little), timing each event's arrival
  against the CLOCK_MONOTONIC stamp the upstream wrote into it.
* :func:`open_upgrade`, :func:`echo_latency`, :func:`echo_throughput`: an exec-style
  ``Connection: Upgrade`` request, then raw bytes echoed back by the upstream.
* :func:`curl_repeat`: curl fetching one URL over and over on one kept-alive TLS
  connection with the client certificate, which wrk cannot present; the "direct over
  TLS" baseline of the 10 MB list.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from .pki import Pki

__all__ = [
    "CurlError",
    "CurlResult",
    "HttpReply",
    "WatchFleet",
    "curl_repeat",
    "echo_latency",
    "echo_throughput",
    "http_get",
    "open_upgrade",
]

_SENT = re.compile(rb'"bench/sent-ns":"(\d+)"')


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: bytes
    body: bytes


def _dechunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


async def http_get(port: int, path: str, headers: tuple[str, ...] = (), timeout: float = 30.0) -> HttpReply:
    async def go() -> HttpReply:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            extra = "".join(f"{h}\r\n" for h in headers)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n".encode())
            data = await reader.read(-1)
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            body = _dechunk(body)
        return HttpReply(status, head, body)

    return await asyncio.wait_for(go(), timeout)


# -- watches --------------------------------------------------------------------------


class _WatchStream(asyncio.Protocol):
    """One watch: parses the response head, HTTP/1.1 chunked framing and event lines."""

    def __init__(self, fleet: WatchFleet, request: bytes) -> None:
        self._fleet = fleet
        self._request = request
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._lines = bytearray()
        self._head_done = False
        self._first = True  # the next event is the ADDED one sent on open
        self._chunked = False
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is still to come

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but behave as such.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fleet.lost += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"watch closed before its first event: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()  # first thing: the arrival time of every event in data
        buf = self._buf
        buf += data
        if not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            if not head.startswith((b"http/1.1 200", b"http/1.0 200")):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"watch refused: {head[:200]!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self._chunked = b"transfer-encoding: chunked" in head
            self._head_done = True
        if self._chunked:
            payload = self._dechunk()
        else:
            payload = bytes(buf)
            buf.clear()
        if payload:
            self._lines += payload
            while (nl := self._lines.find(b"\n")) >= 0:
                line = bytes(self._lines[:nl])
                del self._lines[: nl + 1]
                self._event(line, now)

    def _dechunk(self) -> bytes:
        buf, out = self._buf, bytearray()
        while buf:
            if self._left:
                take = min(self._left, len(buf))
                out += buf[:take]
                del buf[:take]
                self._left -= take
                self._crlf = self._left == 0
            elif self._crlf:
                if len(buf) < 2:
                    break
                del buf[:2]
                self._crlf = False
            else:
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                self._left = int(bytes(buf[:end]).split(b";")[0], 16)
                del buf[: end + 2]
                if self._left == 0:  # the last chunk: the watch ended
                    break
        return bytes(out)

    def _event(self, line: bytes, now: int) -> None:
        if self._first:
            self._first = False
            if not self.ready.done():
                self.ready.set_result(None)
            return
        match = _SENT.search(line)
        if match is not None:
            self._fleet.arrived((now - int(match.group(1))) / 1e6)


@dataclass
class WatchFleet:
    port: int
    path: str
    streams: list[_WatchStream] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lost: int = 0
    _expect: int = 0
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, delay_ms: float) -> None:
        self.delays_ms.append(delay_ms)
        if len(self.delays_ms) >= self._expect:
            self._done.set()

    async def open(self, count: int, concurrency: int = 64, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAccept: application/json\r\n"
            "User-Agent: kproxy-bench\r\n\r\n"
        ).encode()
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                try:
                    _, stream = await asyncio.wait_for(
                        loop.create_connection(lambda: _WatchStream(self, request), "127.0.0.1", self.port), timeout
                    )
                    self.streams.append(stream)
                    await asyncio.wait_for(stream.ready, timeout)
                except (OSError, TimeoutError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(count)))

    def expect(self, count: int) -> None:
        """Start collecting: the next ``count`` arrivals complete :meth:`wait`."""
        self.delays_ms = []
        self._expect = count
        self._done.clear()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.abort()
        self.streams.clear()


# -- upgrades -------------------------------------------------------------------------


async def open_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A ``kubectl exec``-shaped request (POST, SPDY/3.1) that must be answered 101."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nUser-Agent: kproxy-bench\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
        writer.close()
        raise ConnectionError(f"upgrade refused: {head[:300]!r}")
    return reader, writer


async def echo_latency(port: int, path: str, seconds: float, size: int = 64) -> list[float]:
    """Round trips of ``size`` bytes, one at a time, for ``seconds``; in ms."""
    reader, writer = await open_upgrade(port, path)
    message = b"x" * size
    rtts: list[float] = []
    try:
        deadline = time.perf_counter() + seconds
        while (start := time.perf_counter()) < deadline:
            writer.write(message)
            await asyncio.wait_for(reader.readexactly(size), 10)
            rtts.append((time.perf_counter() - start) * 1e3)
    finally:
        writer.close()
    return rtts


async def echo_throughput(
    port: int, path: str, seconds: float, block: int = 65536, window: int = 4 * 1024 * 1024
) -> float:
    """Bytes/second echoed back while sending for ``seconds`` with ``window`` in flight."""
    reader, writer = await open_upgrade(port, path)
    data = b"y" * block
    sent = received = 0
    progress = asyncio.Event()

    async def read() -> None:
        nonlocal received
        while chunk := await reader.read(262144):
            received += len(chunk)
            progress.set()

    task = asyncio.create_task(read())
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            if sent - received >= window:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)
                continue
            writer.write(data)
            sent += block
            await writer.drain()
        while received < sent:
            progress.clear()
            await asyncio.wait_for(progress.wait(), 10)
        return received / (time.perf_counter() - start)
    finally:
        task.cancel()
        writer.close()


# -- curl: the list straight from nginx over TLS ----------------------------------------

# What curl writes after every transfer (-w); the tag tells it apart from curl's own
# error messages on the same stream.
_CURL_TAG = "bench-transfer"
_CURL_WRITE_OUT = (
    f"%{{stderr}}{_CURL_TAG} %{{http_code}} %{{size_download}} %{{size_header}} %{{time_total}} %{{num_connects}}\n"
)
# A URL glob far longer than any run: curl stops when we stop it, not by running out.
_CURL_GLOB = "n=[1-10000000]"


class CurlError(RuntimeError):
    pass


@dataclass(frozen=True)
class CurlResult:
    transfers: int  # complete responses received
    bytes_read: int  # bodies and heads, as wrk counts them
    seconds: float  # from the start of the first transfer (TCP and TLS handshake included) to the end of the last
    times_ms: list[float]  # each transfer's own time
    errors: int  # answers other than 200, or bodies of another size than expected
    connections: int  # TCP connections curl opened; 1 when keep-alive held throughout


async def curl_repeat(url: str, seconds: float, pki: Pki, expect_bytes: int, headers: Sequence[str] = ()) -> CurlResult:
    """Fetch ``url`` again and again over one HTTP/1.1 connection for about ``seconds``.

    One curl process, one URL glob (``?n=1``, ``?n=2``, ...; nginx serves the file by
    path and ignores the query), every body to /dev/null, run sequentially so curl keeps
    the connection alive. The -w line curl writes after each transfer goes to stderr,
    which is unbuffered, so the time we read it is the time the transfer ended; at the
    deadline curl is stopped by its PID and the transfer it was in is not counted.
    Started like wrk, it inherits the harness's CPU affinity: the load core.
    """
    sep = "&" if "?" in url else "?"
    cmd = [
        "curl",
        "-sS",
        "--http1.1",
        "--cacert",
        str(pki.ca),
        "--cert",
        str(pki.client_cert),
        "--key",
        str(pki.client_key),
        "-o",
        "/dev/null",
        "-w",
        _CURL_WRITE_OUT,
    ]
    for header in headers:
        cmd += ["-H", header]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        f"{url}{sep}{_CURL_GLOB}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    done: list[tuple[float, list[str]]] = []  # (when we read it, curl's fields)
    other: list[str] = []
    # Until the first list arrives: a first list that takes 30 s longer than the run is
    # a failure, not a slow result. Then the run lasts ``seconds`` from the start of that
    # first transfer, so a slow start of curl itself (exec, libraries, reading the key)
    # does not shorten the window measured.
    deadline = time.perf_counter() + seconds + 30
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(proc.stderr.readline(), left)
            except TimeoutError:
                break
            if not raw:  # curl exited by itself: an error, or (never in practice) the glob ran out
                await asyncio.wait_for(proc.wait(), 5)  # reaped here, so its exit code is its own
                break
            now = time.perf_counter()
            text = raw.decode(errors="replace").strip()
            fields = text.split()
            if fields[:1] == [_CURL_TAG] and len(fields) == 6:
                if not done:
                    deadline = now - float(fields[4]) + seconds
                done.append((now, fields[1:]))
            elif text:
                other.append(text)
    finally:
        # Ours: stopped by its PID, also on Ctrl-C.
        stopped = proc.returncode is None
        if stopped:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    if not done or (not stopped and proc.returncode != 0):
        raise CurlError(f"curl exited {proc.returncode} after {len(done)} transfers: {' | '.join(other)[-800:]}")
    complete = [f for _, f in done if f[0] != "000"]  # 000: no answer at all
    times_ms = [1e3 * float(f[3]) for _, f in done]
    return CurlResult(
        transfers=len(complete),
        bytes_read=sum(int(f[1]) + int(f[2]) for f in complete),
        # The first transfer's own time reaches back to before the TCP connect.
        seconds=done[-1][0] - done[0][0] + times_ms[0] / 1e3,
        times_ms=times_ms,
        errors=sum(1 for _, f in done if f[0] != "200" or int(f[1]) != expect_bytes),
        connections=sum(int(f[4]) for _, f in done),
    )
