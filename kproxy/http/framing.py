"""Response framing as pure functions: the bytes of a head and how its body is delimited.

RFC 9112 §6: a body is delimited by ``Content-Length``, by chunked coding, or by the
connection's end; 1xx, 204 and 304 answers and answers to HEAD have none (§6.3) while a
HEAD answer keeps the length the handler gave. HTTP/1.0 clients get no chunking: their
streamed answers end with the connection, and a kept-alive HTTP/1.0 connection is said
so (``Connection: keep-alive``). The connection (``kproxy.http.connection``) decides
whether it stays open; these functions only say what to write.
"""

from __future__ import annotations

from kproxy.http.responses import NO_BODY_STATUS, Clock, Response, header_bytes, status_line

__all__ = ["LAST_CHUNK", "Framing", "chunk", "closing_answer", "complete_answer", "stream_head"]

LAST_CHUNK = b"0\r\n\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


def complete_answer(
    status: int,
    lines: bytes,
    body: bytes,
    length: int | None,
    date_line: bytes,
    keep: bool,
    version: tuple[int, int],
    head_only: bool,
) -> bytes:
    """A whole answer in one piece. ``date_line``: ``b""`` when ``lines`` has a Date."""
    # Connection: close to end it; keep-alive said to an HTTP/1.0 client that may stay.
    connection = _CLOSE if not keep else _KEEP_ALIVE if version < (1, 1) else b""
    parts = [status_line(status), lines, date_line, connection]
    if status in NO_BODY_STATUS or status < 200:
        parts.append(b"\r\n")
    else:
        parts.append(b"Content-Length: %d\r\n\r\n" % (length if head_only and length is not None else len(body)))
        if not head_only:
            parts.append(body)
    return b"".join(parts)


class Framing:
    """How a streamed answer's body goes out, decided with its head."""

    __slots__ = ("chunked", "head_only", "keep")

    def __init__(self, chunked: bool, head_only: bool, keep: bool) -> None:
        self.chunked = chunked  # each write is a chunk; LAST_CHUNK ends the body
        self.head_only = head_only  # nothing after the head (HEAD, 1xx, 204, 304)
        self.keep = keep  # the connection may carry another request afterwards


def stream_head(
    status: int,
    lines: bytes,
    *,
    length: int | None,
    date_line: bytes,
    keep: bool,
    version: tuple[int, int],
    head_only: bool,
) -> tuple[bytes, Framing]:
    """The head of an answer whose body follows in pieces, and how to frame them."""
    head_only = head_only or status in NO_BODY_STATUS or status < 200
    framing = b""
    if length is not None:
        framing = b"Content-Length: %d\r\n" % length
    elif not head_only:
        if version >= (1, 1):
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            keep = False  # HTTP/1.0 has no chunking: the body ends with the connection
    connection = _CLOSE if not keep else _KEEP_ALIVE if version < (1, 1) else b""
    head = b"".join((status_line(status), lines, date_line, connection, framing, b"\r\n"))
    return head, Framing(chunked=bool(framing) and length is None, head_only=head_only, keep=keep)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1); never empty, which would end it."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def closing_answer(response: Response, clock: Clock) -> bytes:
    """A whole answer that ends its connection, as bytes (an answer given before any
    request was read: the refusal of a client at the door)."""
    lines, length, has_date = header_bytes(response.headers)
    date_line = b"" if has_date else clock.line()
    return complete_answer(response.status, lines, response.body, length, date_line, False, (1, 1), False)
