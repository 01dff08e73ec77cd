"""What a strict HTTP/1.1 server must make of the bytes a client sent: the oracle of the
fuzzing tests (``test_request_fuzzing.py``), independent of kproxy's parser (llhttp).

In: the bytes a client wrote on one connection (all of them: the client adds nothing
after). Out: a :class:`Verdict` — the requests that are *complete and acceptable*, in
order, with their exact method, target and body (what the API server must see, and
nothing else), and, when the stream goes wrong, the answers kproxy may give to the
request that went wrong (a set of statuses; 0 stands for "no answer": the client's
bytes ran out before the fault could be known).

The rules are RFC 9112's grammar, read strictly, plus what kproxy documents as stricter
than Go's server (README, issue 12 §2):

* request line: ``method SP target SP version``, one space each (more → 400); the
  method a token (else 400); the target visible ASCII (else 400); ``HTTP/1.0`` or
  ``HTTP/1.1`` (another ``HTTP/d.d`` → 505, anything else → 400 or 505);
* lines end in CRLF: a bare LF or CR → 400; a line that begins with SP or HTAB
  (obs-fold) → 400; a field name is a token and the colon follows it at once (else
  400); a field value is VCHAR, obs-text, SP and HTAB only (NUL, CTLs, DEL → 400);
  a field line over 64 KiB → 431;
* framing (RFC 9112 §6): ``Content-Length`` with ``Transfer-Encoding`` → 400; more
  than one ``Content-Length`` (even equal) → 400; one that is not 1*DIGIT, or over
  Go's 63 bits → 400;
  ``Transfer-Encoding`` other than exactly ``chunked`` (case and OWS aside) → 501, and
  with more than one such field 400 or 501;
* chunked bodies (RFC 9112 §7.1): ``chunk-size [chunk-ext] CRLF`` where the size is
  hex that fits in 64 bits and each extension is ``;token[=token|quoted-string]``,
  then exactly the data and CRLF; the last chunk's trailer lines follow the field-line
  rules above; a fault anywhere → 400;
* empty lines before a request are skipped (RFC 9112 §2.2), including a bare LF (which
  §2.2 allows a recipient to take as a line end) or CR, as llhttp does: nothing is
  framed differently, since kproxy frames anew what it forwards;
* keep-alive (RFC 9112 §9.3): ``Connection: close``, or HTTP/1.0 without
  ``Connection: keep-alive``, ends the connection after that request.

When a request has several faults, any of their statuses is right (which one a parser
meets first is its own business). A head the client did not finish may still be
refused as soon as a fault shows — or not yet: both are right (``{status, 0}``).

The fuzzer generates only what both this oracle and kproxy are meant to judge alike
(origin-form targets that need no cleaning, ``Host: localhost`` once); the test checks
every request this oracle completes against h11 as well (:func:`h11_agrees`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import h11

__all__ = ["Forwarded", "Verdict", "h11_agrees", "judge"]

MAX_LINE = 64 * 1024  # kproxy's longest field line (name + value), answered 431 above it
NO_ANSWER = 0

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VALUE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = re.compile(rb"(?:;" + _TOKEN.pattern + rb"(?:=(?:" + _TOKEN.pattern + rb"|" + _QUOTED + rb"))?)*")
_FaultSink = Callable[[set[int], str], None]


@dataclass(frozen=True)
class Forwarded:
    """A request the API server must receive, exactly."""

    method: str
    target: str
    body: bytes


@dataclass
class Verdict:
    forwarded: list[Forwarded] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # where each forwarded request lies in the bytes
    refusal: frozenset[int] | None = None  # the answers allowed to the request that went wrong
    why: str = ""  # what went wrong, for failure messages
    incomplete: bool = False  # the bytes ran out inside a request (nothing to answer for it)
    closes: bool = False  # the last forwarded request ends the connection


class _Fault(Exception):
    def __init__(self, statuses: set[int], why: str) -> None:
        super().__init__(why)
        self.statuses = statuses
        self.why = why


class _Short(Exception):
    """The bytes ran out inside a request."""


def judge(data: bytes) -> Verdict:
    verdict = Verdict()
    pos = 0
    while True:
        while data[pos : pos + 1] in (b"\r", b"\n"):  # empty lines before a request (see above)
            pos += 1
        if pos >= len(data):
            return verdict
        start = pos
        try:
            request, pos, keep_alive = _request(data, pos)
        except _Fault as fault:
            verdict.refusal, verdict.why = frozenset(fault.statuses), fault.why
            return verdict
        except _Short:
            verdict.incomplete = True
            return verdict
        verdict.forwarded.append(request)
        verdict.spans.append((start, pos))
        if not keep_alive:
            verdict.closes = True
            return verdict


def _request(data: bytes, pos: int) -> tuple[Forwarded, int, bool]:
    end = data.find(b"\r\n\r\n", pos)
    complete = end >= 0
    head = data[pos : end + 2] if complete else data[pos:]
    lines, bare = _lines(head, complete)
    # An unfinished head: its whole lines are judged strictly, the one being written
    # when the bytes ran out leniently (a fault in it may not show yet).
    faults = _head_faults(lines[:-1], partial=lines[-1]) if not complete else _head_faults(lines, partial=None)
    if bare:
        faults = (faults[0] | {400}, faults[1] + "; a bare LF or CR") if faults else ({400}, "a bare LF or CR")
    if faults:
        raise _Fault(faults[0] | ({NO_ANSWER} if not complete else set()), faults[1])
    if not complete:
        # The framing fields already written may be refused before the head ends
        # (llhttp judges Content-Length as it reads it).
        named = [line.partition(b":") for line in lines[1:]]
        try:
            _framing([(n.lower(), v.strip(b" \t")) for n, colon, v in named if colon])
        except _Fault as fault:
            raise _Fault(fault.statuses | {NO_ANSWER}, fault.why) from None
        raise _Short()
    method, target, version = lines[0].split(b" ")
    fields = [(n.lower(), v.strip(b" \t")) for n, _, v in (line.partition(b":") for line in lines[1:])]
    chunked, length = _framing(fields)
    pos = end + 4
    if chunked:
        body, pos = _chunked(data, pos)
    else:
        if len(data) - pos < length:
            raise _Short()
        body, pos = data[pos : pos + length], pos + length
    tokens = {t.strip(b" \t").lower() for n, v in fields if n == b"connection" for t in v.split(b",")}
    keep_alive = b"close" not in tokens and (version == b"HTTP/1.1" or b"keep-alive" in tokens)
    return Forwarded(method.decode("latin-1"), target.decode("latin-1"), body), pos, keep_alive


def _lines(head: bytes, complete: bool) -> tuple[list[bytes], bool]:
    """The head's lines without their line ends (the last one partial when not
    complete), and whether a line ended in a bare LF or held a bare CR (400)."""
    lines = head.split(b"\n")
    if complete:
        lines.pop()  # after the last line end
    bare = False
    for i, line in enumerate(lines):
        last = i == len(lines) - 1 and not complete
        if line.endswith(b"\r") and not last:
            line = lines[i] = line[:-1]
        elif not last:
            bare = True  # it ended in a bare LF
        cr = line.find(b"\r")
        if cr >= 0 and not (last and cr == len(line) - 1):
            bare = True
    if not complete and lines[-1].endswith(b"\r"):
        lines[-1] = lines[-1][:-1]
    return lines, bare


def _head_faults(lines: list[bytes], partial: bytes | None) -> tuple[set[int], str] | None:
    statuses: set[int] = set()
    whys: list[str] = []

    def fault(status: set[int], why: str) -> None:
        statuses.update(status)
        whys.append(why)

    if lines:
        _request_line(lines[0], fault)
    elif partial is not None:
        # A request line being written: a bad byte in its method or target may be
        # refused at once (spaces and the version are judged when the line ends).
        parts = partial.split(b" ")
        if (len(parts) > 1 or parts[0]) and not _TOKEN.fullmatch(parts[0]):
            fault({400}, f"the method {parts[0][:40]!r} is not a token")
        if len(parts) > 1 and parts[1] and not _TARGET.fullmatch(parts[1]):
            fault({400}, "the target is not visible ASCII")
        if len(parts) > 3:
            fault({400}, "not one space between method, target and version")
        elif len(parts) == 3 and not (b"HTTP/1.1".startswith(parts[2]) or b"HTTP/1.0".startswith(parts[2])):
            fault({400, 505}, f"version {parts[2][:20]!r}")
    for line in lines[1:]:
        _field_line(line, fault)
    if partial is not None and lines:
        _partial_field_line(partial, fault)
    return (statuses, "; ".join(whys)) if statuses else None


def _partial_field_line(partial: bytes, fault: _FaultSink) -> None:
    """A field line being written: what is there already may be refused."""
    name, colon, value = partial.partition(b":")
    if partial[:1] in (b" ", b"\t"):
        fault({400}, "obs-fold")
    elif (colon or name) and not _TOKEN.fullmatch(name):
        fault({400}, f"invalid field name {name[:40]!r}")
    if colon and not _VALUE.fullmatch(value):
        fault({400}, "invalid bytes in a field value")
    if len(name) + len(value) > MAX_LINE:
        fault({431}, "a field line over 64 KiB")


def _request_line(line: bytes, fault: _FaultSink) -> None:
    parts = line.split(b" ")
    if not _TOKEN.fullmatch(parts[0]):
        fault({400}, f"the method {parts[0][:40]!r} is not a token")
    if len(parts) != 3:
        fault({400}, "not one space between method, target and version")
        if _VERSION.fullmatch(parts[-1]) and parts[-1] not in (b"HTTP/1.1", b"HTTP/1.0"):
            fault({505}, f"version {parts[-1][:20]!r}")
        return
    _, target, version = parts
    if not _TARGET.fullmatch(target):
        fault({400}, "the target is not visible ASCII")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        fault({505} if _VERSION.fullmatch(version) else {400, 505}, f"version {version[:20]!r}")


def _field_line(line: bytes, fault: _FaultSink) -> None:
    if line[:1] in (b" ", b"\t"):
        fault({400}, "obs-fold")
        return
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        fault({400}, f"invalid field name {name[:40]!r}")
    elif not _VALUE.fullmatch(value):
        fault({400}, f"invalid bytes in the value of {name[:40]!r}")
    if len(name) + len(value) > MAX_LINE:
        fault({431}, "a field line over 64 KiB")


def _framing(fields: list[tuple[bytes, bytes]]) -> tuple[bool, int]:
    """(chunked, Content-Length) of a head whose lines are well formed, or the fault."""
    lengths = [v for n, v in fields if n == b"content-length"]
    codings = [v for n, v in fields if n == b"transfer-encoding"]
    statuses: set[int] = set()
    whys = []
    if lengths and codings:
        statuses.add(400)
        whys.append("Content-Length with Transfer-Encoding")
    if len(lengths) > 1:
        statuses.add(400)
        whys.append("more than one Content-Length")
    elif lengths and (not lengths[0].isdigit() or int(lengths[0]) >= 1 << 63):  # Go: a 63-bit number
        statuses.add(400)
        whys.append(f"Content-Length {lengths[0][:40]!r}")
    if len(codings) > 1:
        statuses.update((400, 501))
        whys.append("more than one Transfer-Encoding")
    elif codings and codings[0].lower() != b"chunked":
        statuses.add(501)
        whys.append(f"Transfer-Encoding {codings[0][:40]!r}")
    if statuses:
        raise _Fault(statuses, "; ".join(whys))
    return bool(codings), int(lengths[0]) if lengths else 0


def _chunked(data: bytes, pos: int) -> tuple[bytes, int]:
    """The body of a chunked request whose data begins at ``pos``, and where it ends."""
    body = bytearray()
    while True:
        line, after = _chunk_line(data, pos)
        size_text, semicolon, ext = line.partition(b";")
        if after is None:  # a size line being written: a bad digit or an overflow may be refused at once
            digits = size_text.lstrip(b"0")
            if (size_text or semicolon) and (not _HEX.fullmatch(size_text) or len(digits) > 16):
                raise _Fault({400, NO_ANSWER}, f"chunk line {line[:40]!r}")
            raise _Short()
        pos = after
        if not _HEX.fullmatch(size_text) or not _CHUNK_EXT.fullmatch(semicolon + ext):
            raise _Fault({400}, f"chunk line {line[:40]!r}")
        size = int(size_text, 16)
        if size >= 1 << 64:
            raise _Fault({400}, "a chunk size over 64 bits")
        if size == 0:
            break
        if len(data) - pos < size:
            raise _Short()
        body += data[pos : pos + size]
        pos += size
        ending = data[pos : pos + 2]
        if ending != b"\r\n"[: len(ending)]:
            raise _Fault({400}, "chunk data not followed by CRLF")
        if len(ending) < 2:
            raise _Short()
        pos += 2
    while True:  # the trailer section (RFC 9112 §7.1.2), then the empty line
        line, after = _chunk_line(data, pos)
        if after is None:  # a trailer line being written
            statuses = _field_statuses(line, _partial_field_line)
            if statuses:
                raise _Fault(statuses | {NO_ANSWER}, f"trailer line {line[:40]!r}")
            raise _Short()
        pos = after
        if not line:
            return bytes(body), pos
        statuses = _field_statuses(line, _field_line)
        if statuses:
            raise _Fault(statuses, f"trailer line {line[:40]!r}")


def _field_statuses(line: bytes, judge: Callable[[bytes, _FaultSink], None]) -> set[int]:
    statuses: set[int] = set()
    judge(line, lambda status, why: statuses.update(status))
    return statuses


def _chunk_line(data: bytes, pos: int) -> tuple[bytes, int | None]:
    """The line of chunked framing at ``pos`` (without its CRLF), and where the next
    one starts; None when it has not ended yet."""
    end = data.find(b"\r\n", pos)
    line = data[pos:end] if end >= 0 else data[pos:]
    cr = line.find(b"\r")
    if b"\n" in line or (cr >= 0 and (end >= 0 or cr != len(line) - 1)):
        raise _Fault({400}, "a bare LF or CR in the chunked framing")
    if end < 0:
        return line.removesuffix(b"\r"), None
    return line, end + 2


def h11_agrees(data: bytes, verdict: Verdict) -> str | None:
    """Whether h11, as a server, reads each request the oracle completed off its bytes
    in the same way, exactly to its end (None), or what it read otherwise: a check of
    the oracle itself."""
    for (start, end), expected in zip(verdict.spans, verdict.forwarded, strict=True):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=4 * 1024 * 1024)
        conn.receive_data(data[start:end].lstrip(b"\r\n"))
        conn.receive_data(b"")
        request: h11.Request | None = None
        body = bytearray()
        try:
            while not isinstance(event := conn.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                    return f"h11 found {data[start:end]!r} incomplete"
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
        except h11.RemoteProtocolError as exc:
            return f"h11 refused {data[start:end]!r}: {exc}"
        assert request is not None
        got = Forwarded(request.method.decode("latin-1"), request.target.decode("latin-1"), bytes(body))
        if got != expected or conn.trailing_data != (b"", True):
            return f"h11 read {got!r} off {data[start:end]!r}, then {conn.trailing_data!r} was left"
    return None
