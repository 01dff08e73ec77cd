"""Reading requests off a connection's bytes with llhttp (httptools).

In: bytes as they arrive. Out: a :class:`~kproxy.http.messages.Request` per request
head, handed to the connection (:meth:`Listener.request`) with its body fed as it comes;
an upgrade (the bytes after its head belong to another protocol); or a refusal — the
status and the words Go's server would answer with: 431 for a line over 64 KiB or a head
over 1 MiB (Go's ``DefaultMaxHeaderBytes``), 400 for what llhttp cannot parse.
"""

from __future__ import annotations

from typing import Protocol

import httptools

from kproxy.http.messages import Connection, Request
from kproxy.log import log

__all__ = ["MAX_HEAD", "MAX_LINE", "Listener", "RequestReader"]

# Longest request line or header line; kube clients send long bearer tokens and
# impersonation lists. Go's server allows 1 MiB of headers in all.
MAX_LINE = 64 * 1024
MAX_HEAD = 1024 * 1024
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}


class Listener(Connection, Protocol):
    """What the reader tells the connection."""

    def request(self, request: Request) -> None:
        """A request head is complete (its body follows through the request)."""

    def upgraded(self, tail: bytes) -> None:
        """llhttp saw an upgrade: ``tail`` and later bytes belong to the new protocol."""

    def refuse(self, status: int, detail: str) -> None:
        """Unparseable input: answer ``status`` after what came before, then close."""


class _TooLarge(Exception):
    pass


class RequestReader:
    """llhttp's callbacks for one connection; one request head at a time."""

    __slots__ = ("_conn", "_head_size", "_headers", "_parser", "_url", "parsing")

    def __init__(self, conn: Listener) -> None:
        self._conn = conn
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self.parsing: Request | None = None  # the request whose body is arriving

    def feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._conn.upgraded(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._refuse(431, "")
            else:  # a bug of ours in a callback: say so, answer 500, end the connection
                log.error("internal error parsing a request", exc_info=exc.__context__ or exc)
                self._refuse(500, "")
        except httptools.HttpParserError as exc:
            self._refuse(400, str(exc))

    def cut(self) -> None:
        """The connection ended or broke off: the request being read does not complete."""
        if self.parsing is not None:
            self.parsing.cut()
            self.parsing = None

    def _refuse(self, status: int, detail: str) -> None:
        self.cut()
        self._conn.refuse(status, detail)

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE:
            raise _TooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self._head_size += size + 4
        if size > MAX_LINE or self._head_size > MAX_HEAD:
            raise _TooLarge()
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        request = Request(
            self._conn,
            self._url.decode("latin-1"),
            _METHODS.get(method) or method.decode("latin-1"),
            _version(parser.get_http_version()),
            self._headers,
            parser.should_keep_alive(),
        )
        request.upgraded = parser.should_upgrade()
        self.parsing = request
        self._conn.request(request)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.feed(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.end()
            self.parsing = None


def _version(text: str) -> tuple[int, int]:
    known = _VERSIONS.get(text)
    if known is not None:
        return known
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (1, 1)
