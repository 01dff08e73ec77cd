"""Fuzzing the real kproxy process (hypothesis): generated request streams — heads with
any token method (lowercase and extension ones too), varied targets and header
lines, invalid bytes, obs-fold, bare LF, duplicate and conflicting Content-Length and
Transfer-Encoding, other versions; bodies by length and chunked, with valid and
broken chunk framings (sizes, extensions, terminators, trailers); pipelined
sequences; cut anywhere (the client's bytes run out: it half-closes or resets); and
written to kproxy in pieces split at arbitrary points.

The invariant, for every stream: **the upstream sees exactly the requests the client
completed, with their exact method, target and body, in order, or nothing**, where
"completed" is decided by an oracle independent of kproxy's parser
(``request_oracle.py``: RFC 9112 read strictly plus kproxy's documented stricter
rules, itself checked against h11). Besides: every answer the client gets is
well-formed; the completed requests are answered 200 in order (the upstream's answer,
naming each request); a request that goes wrong gets one answer the oracle allows
(400, 431, 501 or 505) and the connection ends; no traceback reaches kproxy's log; and
afterwards, once the upstream hangs up, kproxy holds exactly the descriptors it held
after its first request (none of the examples' connections is left).

One kproxy process serves the whole module (port 0, a kubeconfig pointing at the
recording upstream, which runs in a thread of its own so that the examples can use
plain blocking sockets). Each example's targets carry its number, so what reaches the
upstream is told apart per example even if it arrived late.

In CI the run is deterministic (``derandomize``, no example database) and bounded
(``KPROXY_FUZZ_EXAMPLES``, default 400: seconds, well under a minute). For a long run,
random and as long as you like (CONTRIBUTING.md)::

    KPROXY_FUZZ_EXAMPLES=20000 python3 -m pytest -p no:cacheprovider -o timeout=0 \\
        tests/integration/test_request_fuzzing.py
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, kubectl_env
from tests.integration.recording_upstream import RecordingUpstream
from tests.integration.request_oracle import NO_ANSWER, Forwarded, Verdict, h11_agrees, judge

# Hypothesis writes a failing example as a patch with libcst, whose import warns
# (mypy_extensions.TypedDict); as an error, it would hide the example behind an INTERNALERROR.
GUARD = 15.0  # seconds: a hang guard, never a timing assertion
EXAMPLES = int(os.environ.get("KPROXY_FUZZ_EXAMPLES", "400"))
# CI: the same examples every run; a long run (the variable set): new ones each time.
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="KPROXY_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    deadline=None,
    print_blob=True,
    # The module's kproxy is shared on purpose; the autouse fixtures only set the
    # environment, which the examples do not use.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
BIG = b"<70 KiB>"
TAG = b"fz000000"  # in every target; replaced by the example's number (same length)
T = TypeVar("T")

# -- the generated streams ---------------------------------------------------------------
#
# Each request draws at most one fault (most draw none), so that pipelines of good
# requests are common and each kind of fault is met on its own and behind good requests.

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = "".join(map(chr, range(0x21, 0x7F)))
FAULTS = ["none"] * 14 + [
    "method", "target", "spaces", "version", "field-name", "field-value", "big", "fold", "bare-lf", "framing", "chunk"
]  # fmt: skip


def latin1(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda text: text.encode("latin-1"))


METHODS = st.one_of(
    latin1(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])),
    latin1(st.sampled_from(["post", "Get", "POSTX", "MKCOL", "PROPFIND", "X-Custom", "delete", "head"])),
    # Any token (HEAD, CONNECT and PRI mean other framing: not generated).
    latin1(st.text(TCHAR, min_size=1, max_size=8).filter(lambda m: m not in ("HEAD", "CONNECT", "PRI"))),
)
BAD_METHODS = st.sampled_from([b"G(T", b"GE\x01T", b"", b"GET\t", b"G\x7fT", b"G\xc9T", b"GET:", b"GET\x00"])
SEGMENT = st.text(ALNUM + "-._~", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
QUERY = st.text(ALNUM + "-._~=&%+,;:@/?!$'()*", max_size=20)
ODD_TARGET_BYTES = st.sampled_from([b"\x7f", b"\x01", b"\x00", b'"', b"<", b"{", b"|", b"\\", b"^", b"`", b"\x80"])
BAD_SPACES = st.sampled_from([b"  ", b"\t", b" \t", b"\x0b"])
VERSIONS = st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"])
BAD_VERSIONS = st.sampled_from(
    [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1", b"HTTP/1.10", b"HTTP/1", b"HTTP/3.0", b"HTTP/1.1 "]
)
FIELD_NAMES = latin1(st.text(TCHAR, min_size=1, max_size=10).map(lambda s: "X-" + s))
BAD_FIELD_NAMES = st.sampled_from([b"X A", b"X-A ", b"X(A", b"", b"X\x00A", b"X-\xe9", b"X\tA", b"X:"])
# Field values: visible ASCII, spaces and tabs, and now and then obs-text (allowed).
FIELD_VALUES = latin1(st.text(VISIBLE + " \t\x80\xe9\xff", max_size=20))
BAD_VALUE_BYTES = st.sampled_from([b"\x00", b"\x01", b"\x0b", b"\x1f", b"\x7f", b"\r", b"\n", b"\r\r"])
FOLDS = st.sampled_from([b" folded", b"\tfolded", b" "])
CHUNK_EXTS = st.sampled_from([b"", b"", b"", b";a", b";a=b", b';a="b c"', b";x-y=1;z", b';q="\\"x"'])
TE_CHUNKED = st.sampled_from([b"chunked", b"chunked", b"Chunked", b" chunked ", b"CHUNKED"])
BAD_FRAMINGS = st.sampled_from(
    ["length-short", "length-long", "length-twice", "length-twice-differing", "length-and-chunked"]
    + ["length-invalid", "te-gzip", "te-gzip-chunked", "te-chunked-gzip", "te-twice", "te-identity"]
)
INVALID_LENGTHS = st.sampled_from([b"1x", b"-1", b"+2", b"0x10", b"", b"1 2", b"\xb2", b"99999999999999999999999"])
CHUNK_FAULTS = st.sampled_from(["size", "terminator", "trailer", "end"])


@st.composite
def chunked_body(draw: st.DrawFn, data: bytes, broken: bool = False) -> bytes:
    """``data`` in chunks, with extensions and trailers; with ``broken``, one piece of
    the framing broken (a size, a terminator, a trailer line or the end)."""
    pieces = []
    rest = data
    while rest:
        size = draw(st.integers(1, len(rest)))
        chunk, rest = rest[:size], rest[size:]
        text = draw(st.sampled_from([b"%x", b"%X", b"0%x"])) % size
        pieces.append([text + draw(CHUNK_EXTS) + b"\r\n", chunk, b"\r\n"])
    last = draw(st.sampled_from([b"0", b"0", b"000", b"0;e=1"])) + b"\r\n"
    trailers = b"".join(
        draw(st.lists(st.sampled_from([b"X-Trailer: t\r\n", b"X-Sum: a b\r\n", b"Expires: 0\r\n"]), max_size=2))
    )
    end = b"\r\n"
    fault = draw(CHUNK_FAULTS if pieces else st.sampled_from(["trailer", "end"])) if broken else None
    if fault == "size":
        piece = draw(st.sampled_from(pieces))
        size = len(piece[1])
        wrong = [b"0x%x" % size, b"fffffffffffffffffffff", b"%x " % size, b"-1", b"g", b"%x" % (size + 1)]
        piece[0] = draw(st.sampled_from(wrong + ([b"%x" % (size - 1)] if size > 1 else []))) + b"\r\n"
    elif fault == "terminator":
        draw(st.sampled_from(pieces))[2] = draw(st.sampled_from([b"XX", b"\n", b"", b"\r", b"\rX", b" \r\n"]))
    elif fault == "trailer":
        trailers += draw(st.sampled_from([b"Bad Trailer\r\n", b"X-T: a\x00b\r\n", b" folded\r\n", b"X-T: t\n"]))
    elif fault == "end":
        end = draw(st.sampled_from([b"", b"\n", b"X\r\n"]))
    return b"".join(b"".join(p) for p in pieces) + last + trailers + end


@st.composite
def framed(draw: st.DrawFn, fault: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The framing header lines and the body bytes that follow the head."""
    how = draw(BAD_FRAMINGS) if fault == "framing" else draw(st.sampled_from(["none", "length", "chunked"]))
    if fault == "chunk":
        how = "chunked"
    data = draw(st.binary(max_size=40)) if how != "none" else b""
    length = b"%d" % len(data)
    if how == "none":
        return [], b""
    if how == "length":
        return [(b"Content-Length", length)], data
    if how == "chunked":
        return [(b"Transfer-Encoding", draw(TE_CHUNKED))], draw(chunked_body(data, fault == "chunk"))
    if how == "length-short":  # the body runs on into what follows
        return [(b"Content-Length", b"%d" % (len(data) + draw(st.integers(1, 30))))], data
    if how == "length-long":  # the rest is read as the next request
        return [(b"Content-Length", b"%d" % draw(st.integers(0, len(data))))], data
    if how == "length-twice":
        return [(b"Content-Length", length), (b"Content-Length", length)], data
    if how == "length-twice-differing":
        return [(b"Content-Length", length), (b"Content-Length", b"%d" % (len(data) + 1))], data
    if how == "length-and-chunked":
        body = draw(chunked_body(data))
        return draw(st.permutations([(b"Content-Length", b"%d" % len(body)), (b"Transfer-Encoding", b"chunked")])), body
    if how == "length-invalid":
        return [(b"Content-Length", draw(INVALID_LENGTHS))], data
    if how == "te-twice":
        return [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], draw(chunked_body(data))
    coding = {"te-gzip": b"gzip", "te-gzip-chunked": b"gzip, chunked", "te-chunked-gzip": b"chunked, gzip"}
    return [(b"Transfer-Encoding", coding.get(how, b"identity"))], draw(chunked_body(data))


@st.composite
def request(draw: st.DrawFn, index: int) -> bytes:
    """One request's bytes (its target names the example and ``index``)."""
    fault = draw(st.sampled_from(FAULTS))
    target = b"/api/v1/namespaces/" + TAG + b"r%d/configmaps" % index
    target += b"".join(b"/" + s.encode() for s in draw(st.lists(SEGMENT, max_size=2)))
    query = draw(st.none() | QUERY)
    if query is not None:
        target += b"?" + query.encode()
    if fault == "target":
        target += draw(ODD_TARGET_BYTES)  # some are refused, some are visible ASCII (and go on)
    method = draw(BAD_METHODS if fault == "method" else METHODS)
    space = draw(BAD_SPACES) if fault == "spaces" else b" "
    line = method + b" " + target + space + draw(BAD_VERSIONS if fault == "version" else VERSIONS)
    fields = draw(st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=4))
    if fault == "field-name":
        fields.append((draw(BAD_FIELD_NAMES), draw(FIELD_VALUES)))
    elif fault == "field-value":
        value = draw(FIELD_VALUES)
        at = draw(st.integers(0, len(value)))
        fields.append((draw(FIELD_NAMES), value[:at] + draw(BAD_VALUE_BYTES) + value[at:]))
    elif fault == "big":
        fields.append((b"X-Big", BIG))  # over kproxy's 64 KiB line: 431 (made big in tagged())
    fields.append((b"Host", b"localhost"))
    framing, body = draw(framed(fault))
    fields += framing
    connection = draw(st.sampled_from([None, None, None, b"close", b"keep-alive", b"Keep-Alive, x-y"]))
    if connection is not None:
        fields.append((b"Connection", connection))
    lines = [line] + [name + b": " + value for name, value in draw(st.permutations(fields))]
    if fault == "fold":
        lines.insert(draw(st.integers(2, len(lines))), draw(FOLDS))
    endings = [b"\r\n"] * len(lines)
    if fault == "bare-lf":
        endings[draw(st.integers(0, len(lines) - 1))] = b"\n"
    head = b"".join(line + ending for line, ending in zip(lines, endings, strict=True)) + b"\r\n"
    leading = draw(st.sampled_from([b"", b"", b"", b"", b"\r\n", b"\r\n\r\n"]))
    return leading + head + body


@st.composite
def stream(draw: st.DrawFn) -> tuple[bytes, list[int], str]:
    """(what the client writes, where its writes split it, how it ends)."""
    count = draw(st.integers(1, 4))
    data = b"".join(draw(request(i)) for i in range(count))
    if draw(st.booleans()):  # its bytes run out somewhere
        data = data[: draw(st.integers(0, len(data) - 1))]
    splits = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=6)))) if data else []
    return data, splits, draw(st.sampled_from(["eof", "eof", "eof", "reset"]))


# -- the module's kproxy and upstream ------------------------------------------------------


class UpstreamThread:
    """:class:`RecordingUpstream` on an event loop of its own, in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="recording-upstream", daemon=True)
        self.thread.start()
        self.recorder = self.call(RecordingUpstream().start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(GUARD * 2)

    def close(self) -> None:
        self.call(self.recorder.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(GUARD)
        self.loop.close()


class Target:
    """The module's kproxy process and what the examples expect of it (a plain class:
    hypothesis prints it with each falsifying example)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, upstream: UpstreamThread, stderr: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.upstream = upstream
        self.stderr_lines = stderr
        self.expected: dict[int, list[Forwarded]] = {}  # per example
        self.listeners = 0  # kproxy's sockets before any traffic
        self.descriptors: dict[str, str] = {}  # kproxy's, after one request, once its sockets are closed

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def __repr__(self) -> str:
        return f"<kproxy {self.proc.pid} on port {self.port}>"

    def open_descriptors(self) -> dict[str, str]:
        """kproxy's descriptors: number → what each one is."""
        found = {}
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):
                found[fd] = os.readlink(f"/proc/{self.proc.pid}/fd/{fd}")
        return found

    def warm_up(self) -> int:
        """One request through, so that what kproxy opens once (at its first request)
        is open; then the upstream hangs up. The number of sockets before it."""
        sockets = sum(v.startswith("socket:") for v in self.open_descriptors().values())
        request = b"GET /api/v1/namespaces/fz000000r0/configmaps HTTP/1.1\r\nHost: localhost\r\n\r\n"
        verdict = judge(request)
        check_answers(exchange(self.port, request, [], "eof", verdict), verdict)
        self.upstream.call(self.upstream.recorder.settled())
        self.expected[0] = verdict.forwarded
        return sockets

    def settled_descriptors(self) -> dict[str, str]:
        """kproxy's descriptors once the upstream has hung up and only its listeners
        are left of its sockets: the clients' and the pool's are gone."""
        self.upstream.call(self.upstream.recorder.hang_up())
        deadline = time.monotonic() + GUARD  # the last clients linger a moment (Go's rstAvoidanceDelay)
        while True:
            found = self.open_descriptors()
            if sum(v.startswith("socket:") for v in found.values()) <= self.listeners or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def seen(self) -> dict[int, list[Forwarded]]:
        """What reached the upstream, per example (its number in the target)."""
        found: dict[int, list[Forwarded]] = {}
        for seen in list(self.upstream.recorder.seen):
            match = re.search(r"/namespaces/fz(\d{6})r", seen.target)
            number = int(match.group(1)) if match else -1
            found.setdefault(number, []).append(Forwarded(seen.method, seen.target, seen.body))
        return found


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "recorder", "cluster": {"server": server}}],
                "users": [{"name": "fuzzer", "user": {}}],
                "contexts": [{"name": "fuzz", "context": {"cluster": "recorder", "user": "fuzzer"}}],
                "current-context": "fuzz",
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    upstream = UpstreamThread()
    home = tmp_path_factory.mktemp("fuzz-home")
    config = kubeconfig(home / "kubeconfig", upstream.recorder.url)
    env = kubectl_env(home)  # no proxy variables, no kubeconfig of the machine's
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kproxy", "--port", "0", "--kubeconfig", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr
    lines: list[str] = []
    pump = threading.Thread(target=lambda: lines.extend(raw.decode(errors="replace").rstrip() for raw in stderr))
    pump.start()
    try:
        first = proc.stdout.readline().decode()
        assert first.startswith("Starting to serve on "), (first, lines)
        found = Target(proc, int(first.rsplit(":", 1)[1]), upstream, lines)
        found.listeners = found.warm_up()
        found.descriptors = found.settled_descriptors()
        yield found
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pump.join(GUARD)
        proc.stdout.close()
        proc.stderr.close()
        upstream.close()


# -- one example ---------------------------------------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\t \x21-\x7e\x80-\xff]*")
FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([\t \x21-\x7e\x80-\xff]*)")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


def answers(data: bytes) -> tuple[list[Answer], bytes]:
    """The complete answers in what kproxy sent, and what follows them; a malformed
    answer fails the test."""
    found: list[Answer] = []
    pos = 0
    while (end := data.find(b"\r\n\r\n", pos)) >= 0:
        status_line, *lines = data[pos:end].split(b"\r\n")
        status = STATUS_LINE.fullmatch(status_line)
        assert status, f"malformed status line {status_line!r} in {data!r}"
        headers = {}
        for line in lines:
            match = FIELD_LINE.fullmatch(line)
            assert match, f"malformed header line {line!r} in {data!r}"
            headers[match.group(1).lower()] = match.group(2)
        assert b"transfer-encoding" not in headers and headers[b"content-length"].isdigit(), data
        length = int(headers[b"content-length"])
        if len(data) - (end + 4) < length:
            break
        found.append(Answer(int(status.group(1)), headers, data[end + 4 : end + 4 + length]))
        pos = end + 4 + length
    return found, data[pos:]


def read_until(sock: socket.socket, received: bytearray, enough: int | None) -> bool:
    """Read into ``received`` until ``enough`` complete answers are in it (None: until
    kproxy closes); whether kproxy closed."""
    while enough is None or len(answers(bytes(received))[0]) < enough:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            raise AssertionError(f"kproxy did not answer within {GUARD} s: {bytes(received)!r}") from None
        if not data:
            return True
        received += data
    return False


def exchange(port: int, data: bytes, splits: list[int], ending: str, verdict: Verdict) -> bytes:
    """Write ``data`` in pieces, read what the oracle says must come, end the
    connection as ``ending`` says; what kproxy answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bounds = [0, *splits, len(data)]
        for start, stop in itertools.pairwise(bounds):
            try:
                sock.sendall(data[start:stop])
            except (BrokenPipeError, ConnectionResetError):
                # kproxy refused the stream (or it asked to close) and stopped reading.
                assert verdict.refusal is not None or verdict.closes, "kproxy closed a good connection"
                break
            time.sleep(0.001)  # so the pieces tend to arrive in reads of their own
        received = bytearray()
        ends = verdict.closes or (verdict.refusal is not None and NO_ANSWER not in verdict.refusal)
        closed = read_until(sock, received, None if ends else len(verdict.forwarded))
        if ending == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif not closed:
            sock.shutdown(socket.SHUT_WR)
            read_until(sock, received, None)  # kproxy ends the connection after the client's EOF
        return bytes(received)
    finally:
        sock.close()


def check_answers(received: bytes, verdict: Verdict) -> None:
    found, rest = answers(received)
    assert not rest, f"an answer cut short: {rest!r}"
    done = len(verdict.forwarded)
    assert [a.status for a in found[:done]] == [200] * done, found
    for answer, request in zip(found, verdict.forwarded, strict=False):
        named = json.loads(answer.body)
        assert (named["method"], named["target"], named["length"]) == (
            request.method,
            request.target,
            len(request.body),
        )
    extra = found[done:]
    if verdict.refusal is None:
        assert not extra, f"answers to no request: {extra}"
        return
    assert len(extra) <= 1, extra
    if not extra:
        assert NO_ANSWER in verdict.refusal, f"no answer; expected one of {set(verdict.refusal)}"
        return
    assert extra[0].status in verdict.refusal, (extra[0], verdict.why)
    assert extra[0].headers.get(b"connection") == b"close", extra[0]


def tagged(data: bytes, number: int) -> bytes:
    return data.replace(TAG, b"fz%06d" % number).replace(BIG, b"a" * (70 * 1024))


# -- the tests ------------------------------------------------------------------------------------------

numbers = itertools.count(1)


@FUZZ
@given(stream())
def test_upstream_sees_exactly_the_completed_requests(target: Target, generated: tuple[bytes, list[int], str]) -> None:
    number = next(numbers)
    raw, splits, ending = generated
    data = tagged(raw, number)
    verdict = judge(data)
    assert h11_agrees(data, verdict) is None, f"the oracle is wrong: {h11_agrees(data, verdict)}"
    target.expected[number] = verdict.forwarded
    received = exchange(target.port, data, splits, ending, verdict)
    check_answers(received, verdict)
    target.upstream.call(target.upstream.recorder.settled())
    assert target.seen().get(number, []) == verdict.forwarded, verdict.why
    assert "Traceback" not in target.stderr, target.stderr


def test_nothing_else_reached_the_upstream_and_nothing_leaked(target: Target) -> None:
    """After the examples (run first, in file order): no request reached the upstream
    that its example did not complete, even late; no traceback; and once the upstream
    hangs up its idle connections, kproxy holds the descriptors it held at the start."""
    target.upstream.call(target.upstream.recorder.settled())
    seen = target.seen()
    assert set(seen) <= set(target.expected), f"requests of no example: {seen.get(-1)}"
    for number, forwarded in target.expected.items():
        assert seen.get(number, []) == forwarded, number
    assert "Traceback" not in target.stderr, target.stderr
    assert target.settled_descriptors() == target.descriptors
