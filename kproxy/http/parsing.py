"""Reading requests off a connection's bytes with llhttp (httptools).

In: bytes as they arrive. Out: a :class:`~kproxy.http.messages.Request` per request
head, handed to the connection (:meth:`Listener.request`) with its body fed as it comes;
an upgrade (the bytes after its head belong to another protocol); or a refusal — the
status and the words Go's server would answer with:

* 431 for a line over 64 KiB or a head over 1 MiB (Go's ``DefaultMaxHeaderBytes``);
* 505 for a version other than HTTP/1.0 and HTTP/1.1 (``PRI * HTTP/2.0`` included:
  kproxy speaks no HTTP/2 to clients; Go answers 505 to versions it does not serve);
* 501 for a ``Transfer-Encoding`` llhttp cannot frame (Go: "Unsupported transfer
  encoding"; a list that ends in chunked is refused by the connection, see there);
* 400 for what llhttp cannot parse, and for extra spaces in the request line, which
  llhttp skips and Go refuses ("malformed HTTP version").

A read that repeats the previous one byte for byte, when that one was a whole request
without a body that began and ended between requests (a poller's, a dashboard's, a
controller's GET again on its kept-alive connection), gives the same request without
llhttp: from the same state, the same bytes would make the same calls and leave it in
the same state (:meth:`RequestReader.feed`).

Methods llhttp does not know (``post``, ``POSTX``) are accepted, as any token is by
Go: :mod:`kproxy.http.methods` handles them on llhttp's error path, so the usual
methods cost nothing more. To find where such a request began, the reader remembers
how the previous read ended: between requests, in a head (with that head's bytes), or
in a body (by length: how much of it is left; chunked: the request's bytes up to
MAX_LINE, since only llhttp knows where a chunked body ends).
"""

from __future__ import annotations

import logging
from typing import Protocol, cast

import httptools

from kproxy.http.h2c import only_h2c, without_h2c
from kproxy.http.messages import Connection, Request
from kproxy.http.methods import STAND_IN, is_token, message_start, method_token
from kproxy.log import log, log_throttled

__all__ = ["MAX_HEAD", "MAX_LINE", "Listener", "RequestReader"]

# Longest request line or header line; kube clients send long bearer tokens and
# impersonation lists. Go's server allows 1 MiB of headers in all.
MAX_LINE = 64 * 1024
MAX_HEAD = 1024 * 1024
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
_TABLED = frozenset(_METHODS.values())
# The longest read kept to be recognised again: a usual request, long bearer token
# included; a connection keeps at most this (and the header list it was read into).
_AGAIN_MAX = 16 * 1024
_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}
# llhttp's words for what Go's server answers with other statuses than 400.
_STATUS_OF_ERROR = {
    "Invalid HTTP version": 505,
    "Pause on PRI/Upgrade": 505,  # the HTTP/2 connection preface
    "Request has invalid `Transfer-Encoding`": 501,
    "Invalid `Transfer-Encoding` header value": 501,
}


class Listener(Connection, Protocol):
    """What the reader tells the connection."""

    def request(self, request: Request) -> None:
        """A request head is complete (its body follows through the request)."""

    def upgraded(self, tail: bytes) -> None:
        """llhttp saw an upgrade: ``tail`` and later bytes belong to the new protocol."""

    def refuse(self, status: int, detail: str) -> None:
        """Unparseable input: answer ``status`` after what came before, then close."""


class _Nobody:
    """The listener of a closed reader, and of :data:`_NO_PARSER`: hears nothing."""

    transport = None
    peer = None
    attachment = None

    def request(self, request: Request) -> None:
        pass

    def upgraded(self, tail: bytes) -> None:
        pass

    def refuse(self, status: int, detail: str) -> None:
        pass


_NOBODY = cast(Listener, _Nobody())
_NO_PARSER = httptools.HttpRequestParser(_Nobody())


class _TooLarge(Exception):
    pass


class _Refused(Exception):
    """Raised in a callback: the request is answered ``status`` (``args[1]`` the detail)."""


class _Reread(Exception):
    """Raised in a callback: the request is read again, without its h2c offer."""


class _Held:
    """How a read ended: in the head of a request (``headers`` is its list, ``parts``
    its bytes so far, ``located`` whether they start where it starts), or in the body of
    ``request`` (``remaining`` bytes of it to come; None when chunked, and then
    ``parts`` are the request's bytes so far, if ``located``)."""

    __slots__ = ("headers", "located", "parts", "remaining", "request", "size")

    def __init__(
        self,
        headers: list[tuple[bytes, bytes]] | None = None,
        parts: list[bytes] | None = None,
        located: bool = False,
        request: Request | None = None,
        remaining: int | None = None,
        size: int = 0,
    ) -> None:
        self.headers = headers
        self.parts = parts or []
        self.located = located
        self.request = request
        self.remaining = remaining
        self.size = size  # of the parts of a chunked request


class RequestReader:
    """llhttp's callbacks for one connection; one request head at a time."""

    __slots__ = (
        "_again",
        "_conn",
        "_data",
        "_first",
        "_head_size",
        "_headers",
        "_held",
        "_model",
        "_override",
        "_parser",
        "_pending",
        "_read",
        "_url",
        "head_open",
        "parsing",
    )

    def __init__(self, conn: Listener) -> None:
        self._conn = conn
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self.head_open = False  # between a request's first byte and the end of its head
        self._read = b""  # the read being parsed
        self._data = b""  # the same, until the first head in it ends
        self._held: _Held | None = None  # how the previous read ended (None: between requests)
        self._override: str | None = None  # the method of the request behind STAND_IN
        self._pending = b""  # the start of a request whose method token is not complete yet
        self.parsing: Request | None = None  # the request whose body is arriving
        # The last read, when it was one whole request without a body from between
        # requests to between requests (else None), and what llhttp made of it.
        self._again: bytes | None = None
        self._model: tuple[str, str, tuple[int, int], list[tuple[bytes, bytes]]] = ("", "", (1, 1), [])
        self._first: Request | None = None  # the request whose head ended first in this read

    def feed(self, data: bytes) -> None:
        if data == self._again:
            # The same bytes again: llhttp would start where it started then, make the
            # same calls and end where it ended, between requests. The request is made
            # again without it (its header list shared: nothing changes one).
            raw_path, method, version, headers = self._model
            request = Request(self._conn, raw_path, method, version, headers, True)
            request.complete = True
            self._headers = []  # another wait's marker for the deadlines, as a new head has
            self._conn.request(request)
            return
        self._again = None
        if self._pending:  # a method llhttp does not know, its token not complete yet
            self._feed_method(data)
            return
        held = self._held
        self._first = None
        self._read = self._data = data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            self._conn.upgraded(data[offset:])
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Reread):
                self._callback_failed(cause or exc)
                return
            reason = ""  # read it again below
        except httptools.HttpParserInvalidMethodError as exc:
            # Handled below, outside this handler: a fresh parser's errors must not be
            # chained to this one (httptools reports a callback's exception that way).
            reason = str(exc)
        except httptools.HttpParserError as exc:
            reason = str(exc)
            status = _STATUS_OF_ERROR.get(reason, 400)
            self._refuse(status, self._detail(status, reason))
            return
        else:
            if self.head_open or self.parsing is not None:
                self._hold(data)  # the read ended inside a request (rare for small ones)
            elif held is not None:
                self._held = None
            elif self._first is not None:
                self._remember(data, self._first)
                self._first = None
            return
        if reason:
            self._unknown_method(data, reason)
        else:
            self._reread_without_h2c(data)

    def _remember(self, data: bytes, request: Request) -> None:
        """``data``, read between requests, ended between requests: keep it to be
        recognised when it comes again, if it was just ``request``, whole, without a
        body, kept alive, and with a method read from these bytes (not one put in for a
        method llhttp does not know, see :mod:`kproxy.http.methods`)."""
        if (
            len(data) <= _AGAIN_MAX
            and request.complete
            and request.keep_alive
            and not request.upgraded
            and request.method in _TABLED
            and not request.body_received
            and request.raw_headers is self._headers  # no head after its own in the read
        ):
            self._again = data
            self._model = (request.raw_path, request.method, request.version, request.raw_headers)

    def _callback_failed(self, cause: BaseException) -> None:
        if isinstance(cause, _TooLarge):
            self._refuse(431, "")
        elif isinstance(cause, _Refused):
            self._refuse(*cause.args)
        else:  # a bug of ours in a callback: say so, answer 500, end the connection
            log.error("internal error parsing a request", exc_info=cause)
            self._refuse(500, "")

    def _detail(self, status: int, reason: str) -> str:
        if status == 501:
            if reason.startswith("Request has"):  # found with the whole head in: name it
                codings = b", ".join(v for n, v in self._headers if n.lower() == b"transfer-encoding")
                return f"unsupported transfer encoding {codings.decode('latin-1')[:100]!r}"
            return "unsupported transfer encoding"
        if status == 505:
            return "unsupported protocol version"
        return reason

    @property
    def marker(self) -> object:
        """The same object for as long as the same request is being read (its header
        list), another for the next one: how deadlines tell one head from the next."""
        return self._headers

    def close(self) -> None:
        """The connection is gone: drop the parser (its callbacks are this reader's
        methods) and the connection, so that neither waits for the cycle collector."""
        self._parser = _NO_PARSER
        self._conn = _NOBODY
        self._held = None
        self._again = None
        self._first = None

    def cut(self) -> None:
        """The connection ended or broke off: the request being read does not complete."""
        if self.parsing is not None:
            self.parsing.cut()
            self.parsing = None

    def _refuse(self, status: int, detail: str) -> None:
        self.cut()
        self._conn.refuse(status, detail)

    # -- what a read that ends inside a request leaves for the next one -------------------

    def _hold(self, data: bytes) -> None:
        held = self._held
        if not self.head_open:
            request = self.parsing
            assert request is not None
            length = request.content_length
            if length is not None:
                self._held = _Held(request=request, remaining=length - request.content.received)
            else:
                self._held = self._in_chunked(request, data)
        elif held is not None and held.headers is self._headers:
            held.parts.append(data)  # the same head goes on (bounded: MAX_HEAD, MAX_LINE)
        else:
            start = self._located(data)
            self._held = _Held(self._headers, [data[start:] if start is not None else data], start is not None)

    def _in_chunked(self, request: Request, data: bytes) -> _Held:
        """A read ended in a chunked body: where it ends is known only to llhttp, so the
        request's bytes from its first one are kept (up to MAX_LINE of them; a longer
        one is forgotten), for a replay to find where the next request begins."""
        held = self._held
        if held is not None and held.request is request:  # the body goes on
            if held.located:
                held.parts.append(data)
                held.size += len(data)
                if held.size > MAX_LINE:
                    held.parts, held.located = [], False
            return held
        if held is not None and held.request is None and held.headers is request.raw_headers:
            parts = [*held.parts, data] if held.located else []  # the head began in an earlier read
        else:
            start = self._located(data)
            parts = [data[start:]] if start is not None else []
        size = sum(map(len, parts))
        located = bool(parts) and size <= MAX_LINE
        return _Held(parts=parts if located else None, located=located, request=request, size=size)

    def _located(self, data: bytes) -> int | None:
        """Where in ``data`` the request that began last in it began, knowing how the
        previous read ended; None when that cannot be known (it ended in a chunked body
        too long to replay)."""
        held = self._held
        if held is None:
            return message_start(data)
        skip = held.remaining
        if skip is not None:  # in a body by length: it ends `remaining` bytes in
            start = message_start(data[skip:])
            return None if start is None else skip + start
        if not held.located:
            return None
        before = b"".join(held.parts)  # the request that was open (head, chunked body), from its first byte
        start = message_start(before + data)
        return None if start is None or start < len(before) else start - len(before)

    # -- methods llhttp does not know (kproxy.http.methods) -------------------------------

    def _this_request(self, data: bytes) -> bytes | None:
        """The request being read, from its first byte to the end of ``data``; None
        when where it began cannot be known."""
        held = self._held
        if held is not None and held.headers is self._headers and held.request is None:
            # It began in an earlier read, and what was held of it starts where it does.
            return b"".join(held.parts) + data if held.located else None
        start = self._located(data)
        return None if start is None else data[start:]

    def _fresh_parser(self) -> None:
        self._parser = httptools.HttpRequestParser(self)  # the old one is in its error state
        self._held = None  # the fresh parser starts at a request's first byte

    def _reread_without_h2c(self, data: bytes) -> None:
        request = self._this_request(data)
        end = -1 if request is None else request.find(b"\r\n\r\n")
        if request is None or end < 0:
            self._refuse(400, "cannot read the request again without its Upgrade: h2c")
            return
        self._fresh_parser()
        self.feed(without_h2c(request[: end + 4]) + request[end + 4 :])

    def _unknown_method(self, data: bytes, reason: str) -> None:
        request = self._this_request(data)
        if request is None:
            log_throttled(
                "unknown-method", logging.WARNING, "cannot tell where a request with an unknown method began: 400"
            )
            self._refuse(400, reason)
            return
        self._pending = request
        self._feed_method(b"")

    def _feed_method(self, data: bytes) -> None:
        data = self._pending + data
        found = method_token(data)
        if found is None:
            if len(data) > MAX_LINE:
                self._refuse(431, "")
            elif data and not is_token(data):
                self._refuse(400, f"invalid method {data[:100].decode('latin-1')!r}")
            else:
                self._pending = data  # wait for the rest of the token
            return
        method, end = found
        if not is_token(method):
            # Go: badStringError("invalid method", ...): an empty one, or a CTL or tab in it.
            self._refuse(400, f"invalid method {method[:100].decode('latin-1')!r}")
            return
        self._pending = b""
        self._override = method.decode("latin-1")
        self._fresh_parser()
        self.feed(STAND_IN + data[end:])

    def _method_name(self, method: bytes) -> str:
        override, self._override = self._override, None
        if override is not None and method == STAND_IN:
            return override
        return method.decode("latin-1")  # one llhttp knows but kproxy's table does not (PROPFIND...)

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0
        self.head_open = True

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
        url = self._url
        data, self._data = self._data, b""  # the first head that ends in a read
        end = len(method) + len(url) + 1
        if data[end : end + 9] == b" HTTP/1.1" and self._held is None:
            # The read began with this request (between requests, no empty line first),
            # so its line is "METHOD SP TARGET SP HTTP/1.1", one space each: checked,
            # and cheaper than asking llhttp for the version. Anything else is checked
            # below, with the whole read and what is held of the head.
            version = (1, 1)
        else:
            version = self._version(method, url)
        upgraded = parser.should_upgrade()
        if upgraded and only_h2c(self._headers):
            raise _Reread()  # an HTTP/2 offer, declined: an ordinary request (kproxy.http.h2c)
        self.head_open = False
        request = Request(
            self._conn,
            url.decode("latin-1"),
            _METHODS.get(method) or self._method_name(method),
            version,
            self._headers,
            parser.should_keep_alive(),
        )
        request.upgraded = upgraded
        self.parsing = request
        if data:
            self._first = request
        self._conn.request(request)

    def _version(self, method: bytes, url: bytes) -> tuple[int, int]:
        """The version of a request whose line was not checked on the way in: one space
        between its parts (llhttp skips more, Go's server refuses them: "malformed HTTP
        version"), and HTTP/1.0 or HTTP/1.1 (Go answers 505 to the rest)."""
        text = self._parser.get_http_version()
        version = _VERSIONS.get(text)
        if version is None:
            raise _Refused(505, f"unsupported protocol version {'HTTP/' + text!r}")
        line = method + b" " + url + b" HTTP/" + text.encode()
        held = self._held
        before = b"".join(held.parts) if held is not None and held.headers is self._headers else b""
        # (A copy of this very line elsewhere in the read would hide extra spaces; the
        # request is still read right, with llhttp's parts, so nothing is mistaken.)
        if line not in before + self._read:
            raise _Refused(400, "malformed request line: one space between method, target and version")
        return version

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.feed(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.end()
            self.parsing = None
