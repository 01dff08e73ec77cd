"""Static files for ``--www``: Go's ``http.StripPrefix(p, http.FileServer(http.Dir(root)))``.

In: a :class:`~kproxy.http.server.Request` and its percent-decoded path, www prefix stripped (the
router has already answered unclean escaped paths). Out: kubectl 1.32's answer (Go 1.23
``net/http/fs.go``, reference §9):

* ``path.Clean`` clamped at the root; ``localRedirect`` 301s: ``…/index.html`` → ``./``,
  ``dir`` → ``dir/``, ``file/`` → ``../file``;
* a directory's ``index.html``, else its ``dirList``; ``http.Error`` 404/403/500 (a root
  that is a file: ``/`` → 500 "attempting to traverse a non-directory", the rest 404);
* files as ``serveContent`` serves them: Content-Type from Go's built-in extension table
  (+ ``.txt``, from the observed machine's mime.types) or sniffed; RFC 9110 §13
  preconditions in Go's order; one range → 206, several → ``multipart/byteranges`` as
  Go writes it, none overlapping → 416. Any method; HEAD gets the headers only.

Bodies stream with ``loop.sendfile`` where the loop has it (not uvloop), else in chunks
read in the default executor, where every other filesystem call runs too.

Improvements over kubectl: (1) nothing outside the root is served: a path whose real
path (symlinks resolved) leaves the root's real path is a 404 like a missing file; links
within the root work. The checked real path is what gets opened (``O_NOFOLLOW``); only a
parent directory swapped concurrently could escape (Python lacks ``openat2``'s
``RESOLVE_BENEATH``). (2) FIFOs, sockets and devices are 404s (Go blocks on a FIFO).

Deviations: no system mime.types; sniffing skips Go's audio, video and font signatures;
If-(Un)Modified-Since dates parse a little more leniently than Go's ``http.ParseTime``;
listings always carry Content-Length (Go chunks past 2 KiB); a 301 to HEAD says
``Content-Length: 0``.
"""

from __future__ import annotations

import asyncio
import calendar
import email.utils
import errno
import io
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from kproxy.http.server import Answer, Request, Response, StreamResponse, http_date
from kproxy.policy import gopath

__all__ = ["StaticFiles"]

_CHUNK = 256 * 1024
_TEXT, _HTML = "text/plain; charset=utf-8", "text/html; charset=utf-8"
_GET_HEAD = ("GET", "HEAD")

# Go 1.23's mime.builtinTypes, plus .txt as the observed machine's mime.types gave it.
_TYPES = {
    ".avif": "image/avif",
    ".css": "text/css; charset=utf-8",
    ".gif": "image/gif",
    ".htm": _HTML,
    ".html": _HTML,
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
    ".txt": _TEXT,
}

# Go's sniff.go (WHATWG mimesniff) in its order. HTML: after leading whitespace, letters
# case-insensitive, then a space or '>'. Then (mask or None for an exact prefix, pattern).
_HTML_TAGS = [
    b"<" + t.encode()
    for t in (
        "!DOCTYPE HTML",
        "HTML",
        "HEAD",
        "SCRIPT",
        "IFRAME",
        "H1",
        "DIV",
        "FONT",
        "TABLE",
        "A",
        "STYLE",
        "TITLE",
        "B",
        "BODY",
        "BR",
        "P",
        "!--",
    )
]
_SIGS: list[tuple[bytes | None, bytes, str]] = [
    (None, b"%PDF-", "application/pdf"),
    (None, b"%!PS-Adobe-", "application/postscript"),
    (b"\xff\xff\0\0", b"\xfe\xff\0\0", "text/plain; charset=utf-16be"),
    (b"\xff\xff\0\0", b"\xff\xfe\0\0", "text/plain; charset=utf-16le"),
    (b"\xff\xff\xff\0", b"\xef\xbb\xbf\0", _TEXT),
    (None, b"\0\0\1\0", "image/x-icon"),
    (None, b"\0\0\2\0", "image/x-icon"),
    (None, b"BM", "image/bmp"),
    (None, b"GIF87a", "image/gif"),
    (None, b"GIF89a", "image/gif"),
    (b"\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff\xff\xff", b"RIFF\0\0\0\0WEBPVP", "image/webp"),
    (None, b"\x89PNG\r\n\x1a\n", "image/png"),
    (None, b"\xff\xd8\xff", "image/jpeg"),
    (None, b"\x1f\x8b\x08", "application/x-gzip"),
    (None, b"PK\3\4", "application/zip"),
    (None, b"Rar!\x1a\x07\0", "application/x-rar-compressed"),
    (None, b"Rar!\x1a\x07\1\0", "application/x-rar-compressed"),
    (None, b"\0asm", "application/wasm"),
]
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")  # WHATWG "binary data bytes"


def _detect_content_type(data: bytes) -> str:
    """Go's ``http.DetectContentType`` (minus audio, video and fonts) of a file's start."""
    data = data[:512]
    lead = data.lstrip(b"\t\n\x0c\r ")
    for tag in _HTML_TAGS:
        if (
            len(lead) > len(tag)
            and lead[len(tag)] in b" >"
            and tag == bytes(b & 0xDF if 0x41 <= t <= 0x5A else b for b, t in zip(lead, tag))
        ):
            return _HTML
    if lead.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for mask, pattern, ctype in _SIGS:
        if (
            data.startswith(pattern)
            if mask is None
            else len(data) >= len(pattern) and all(d & m == p for d, m, p in zip(data, mask, pattern))
        ):
            return ctype
    return "application/octet-stream" if _BINARY.search(lead) else _TEXT


def _parse_http_date(value: str) -> int | None:
    """Go's http.ParseTime accepts IMF-fixdate, RFC 850 and asctime dates; so does this,
    a little more leniently (numeric zones, a missing weekday)."""
    try:
        parsed = email.utils.parsedate_tz(value)
    except (IndexError, ValueError):  # old Pythons raise on some malformed dates
        return None
    return None if parsed is None else calendar.timegm(parsed[:6]) - (parsed[9] or 0)


# Conditional requests, RFC 9110 §13.2.2 order, as Go's checkPreconditions. Go's scanETag
# and its If-Match/If-None-Match loop: blanks, commas and entity-tags (§8.8.3) until "*";
# we (like Go's FileServer) send no ETag, so only "*" can match.
_ETAG = re.compile(r'[ \t\r\n]*(?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*"')
_STAR = re.compile(r'(?:[ \t\r\n,]|(?:W/)?"[\x21\x23-\x7e\x80-\U0010ffff]*")*\*')


def _not_after(value: str, mtime: int | None) -> bool:
    """``mtime <= date`` for If-Modified-Since; False when either is unknown."""
    when = _parse_http_date(value) if value and mtime is not None else None
    return when is not None and mtime is not None and mtime <= when


def _preconditions(method: str, headers: Mapping[str, str], mtime: int | None) -> int | None:
    """304 or 412 when a precondition decides the answer (``mtime``: whole seconds)."""
    if im := headers.get("If-Match", ""):  # §13.1.1
        if not _STAR.match(im):
            return 412
    elif (ius := headers.get("If-Unmodified-Since", "")) and mtime is not None:  # §13.1.4
        when = _parse_http_date(ius)
        if when is not None and mtime > when:
            return 412
    if inm := headers.get("If-None-Match", ""):  # §13.1.2; then IMS is not looked at
        if _STAR.match(inm):
            return 304 if method in _GET_HEAD else 412
    elif method in _GET_HEAD and _not_after(headers.get("If-Modified-Since", ""), mtime):
        return 304  # §13.1.3
    return None


def _range_header(method: str, headers: Mapping[str, str], mtime: int) -> str:
    """Range, dropped when If-Range fails (§13.1.5, Go's checkIfRange)."""
    rng, if_range = headers.get("Range", ""), headers.get("If-Range", "")
    if not rng or not if_range or method not in _GET_HEAD:
        return rng
    if _ETAG.match(if_range):
        return ""
    return rng if _parse_http_date(if_range) == mtime else ""


_NO_OVERLAP = "invalid range: failed to overlap"
_BLANKS = " \t\r\n"  # Go's textproto.TrimString
_INT64 = re.compile(r"([+-]?)0*([0-9]{0,19})")


def _int64(s: str) -> int | None:  # Go's strconv.ParseInt(s, 10, 64)
    m = _INT64.fullmatch(s)
    n = int(m[1] + (m[2] or "0")) if m and s.lstrip("+-") else None
    return n if n is not None and -(2**63) <= n < 2**63 else None


def _parse_range(spec: str, size: int) -> list[tuple[int, int]] | str:
    """Go's parseRange (RFC 9110 §14.1.2): (start, length) pairs, or the 416 error text."""
    if not spec:
        return []
    if not spec.startswith("bytes="):
        return "invalid range"
    ranges: list[tuple[int, int]] = []
    no_overlap = False
    for item in spec[6:].split(","):
        first, dash, last = (x.strip(_BLANKS) for x in item.strip(_BLANKS).partition("-"))
        if not (first or dash):
            continue
        if not dash:
            return "invalid range"
        if not first:  # "-N": the last N bytes
            n = _int64(last) if last[:1] not in ("", "-") else None
            if n is None:
                return "invalid range"
            ranges.append((size - min(n, size), min(n, size)))
            continue
        start = _int64(first)
        if start is None or start < 0:
            return "invalid range"
        if start >= size:  # checked before the end is even parsed, as Go does
            no_overlap = True
            continue
        end = _int64(last) if last else size - 1
        if end is None or start > end:
            return "invalid range"
        ranges.append((start, min(end, size - 1) - start + 1))
    return _NO_OVERLAP if no_overlap and not ranges else ranges


def _href(name: bytes) -> bytes:
    """Go's ``url.URL{Path: name}.String()``: escape all but RFC 3986 path characters, and
    put ``./`` before a colon in the first segment so it cannot read as a scheme."""
    if name == b"*":
        return name
    href = quote(name, safe="$&+,/:;=@").encode("ascii")
    return b"./" + href if b":" in href.split(b"/", 1)[0] else href


def _html(text: bytes) -> bytes:  # Go's htmlReplacer
    for c, ref in zip(b"&<>\"'", (b"&amp;", b"&lt;", b"&gt;", b"&#34;", b"&#39;")):
        text = text.replace(bytes([c]), ref)
    return text


@dataclass(frozen=True)
class _Answer:
    """A whole response decided off the event loop: an error, a redirect, a listing."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    mtime: int | None = None  # a listing's: If-Modified-Since still applies


@dataclass(frozen=True)
class _Opened:
    fobj: io.FileIO
    size: int
    mtime_ns: int
    ctype: str


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> _Answer:
    """Go's http.Error: the text and a newline, plain text not to be sniffed."""
    h = {"Content-Type": _TEXT, "X-Content-Type-Options": "nosniff", **(headers or {})}
    return _Answer(status, f"{text}\n".encode(), h)


_NOT_FOUND = _error(404, "404 page not found")
_SERVER_ERROR = _error(500, "500 Internal Server Error")


def _redirect(location: str, query: str) -> _Answer:
    """Go's localRedirect: 301 to a relative Location, the raw query kept."""
    location += f"?{query}" if query else ""
    # Go's header writer turns CR and LF into spaces (headerNewlineToSpace).
    return _Answer(301, headers={"Location": location.replace("\r", " ").replace("\n", " ")})


def _open_error(exc: OSError) -> _Answer:
    """Go's toHTTPError after mapOpenError: a non-directory on the way is a 404."""
    if exc.errno == errno.ENOENT:  # errors.Is(err, fs.ErrNotExist)
        return _NOT_FOUND
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _error(403, "403 Forbidden")
    # mapOpenError: a non-directory on the way (ENOTDIR) means "not found" too.
    return _NOT_FOUND if exc.errno == errno.ENOTDIR else _SERVER_ERROR


def _listing(fd: int, mtime: int | None) -> _Answer:
    """Go's dirList. DirEntry.IsDir does not follow symlinks: links get no slash."""
    try:
        with os.scandir(fd) as it:
            entries = sorted((os.fsencode(e.name), e.is_dir(follow_symlinks=False)) for e in it)
    except OSError:
        return _error(500, "Error reading directory")
    out = [b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n']
    for name, is_dir in entries:
        name += b"/" if is_dir else b""
        out.append(b'<a href="%s">%s</a>\n' % (_href(name), _html(name)))
    headers = {"Content-Type": _HTML}
    if mtime is not None:
        headers["Last-Modified"] = http_date(mtime)
    return _Answer(200, b"".join(out) + b"</pre>\n", headers, mtime)


def _seconds(mtime_ns: int) -> int | None:
    """Whole seconds, as Last-Modified has them; the epoch means unknown (isZeroTime)."""
    return mtime_ns // 1_000_000_000 if mtime_ns else None


def _multipart(
    ranges: list[tuple[int, int]], size: int, ctype: str
) -> tuple[tuple[tuple[bytes, int, int], ...], bytes, str]:
    """RFC 9110 §14.6 multipart/byteranges, byte for byte as Go's mime/multipart writes
    it: (part header, offset, count) per range, the trailer and the Content-Type."""
    boundary = secrets.token_hex(30)
    parts = []
    for i, (start, n) in enumerate(ranges):
        head = f"\r\n--{boundary}\r\n" if i else f"--{boundary}\r\n"
        head += f"Content-Range: bytes {start}-{start + n - 1}/{size}\r\n"
        parts.append(((head + f"Content-Type: {ctype}\r\n\r\n").encode(), start, n))
    trailer = f"\r\n--{boundary}--\r\n".encode()
    return tuple(parts), trailer, f"multipart/byteranges; boundary={boundary}"


class _FileResponse(StreamResponse):
    """Once prepared, sends (part header, offset, count) pieces of ``fobj`` and a trailer,
    then closes it. Without ``fobj`` (HEAD) only the headers go out."""

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        fobj: io.FileIO | None = None,
        parts: tuple[tuple[bytes, int, int], ...] = (),
        trailer: bytes = b"",
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._fobj, self._parts, self._trailer = fobj, parts, trailer

    async def prepare(self, request: Request) -> StreamResponse:
        fobj, self._fobj = self._fobj, None
        try:
            writer = await super().prepare(request)
            if fobj is None:
                return writer
            for head, offset, count in self._parts:
                await self.write(head)
                if not await self._copy(request, fobj, offset, count):
                    # The file shrank under us after Content-Length went out: closing the
                    # connection is the only way left to tell the client.
                    self.force_close()
                    if request.transport is not None:
                        request.transport.close()
                    return writer
            await self.write_eof(self._trailer)
            return writer
        finally:
            if fobj is not None:
                fobj.close()

    async def _copy(self, request: Request, fobj: io.FileIO, offset: int, count: int) -> bool:
        loop = asyncio.get_running_loop()
        if count and request.transport is not None:
            try:  # os.sendfile on asyncio's own loops, as aiohttp's FileResponse does
                return await loop.sendfile(request.transport, fobj, offset, count) == count
            except NotImplementedError:  # uvloop: chunks read off the loop instead
                pass
        while count:
            chunk = await loop.run_in_executor(None, os.pread, fobj.fileno(), min(_CHUNK, count), offset)
            if not chunk:
                return False
            await self.write(chunk)
            offset, count = offset + len(chunk), count - len(chunk)
        return True


def _discard(job: asyncio.Future[_Answer | _Opened]) -> None:
    """Closes what a lookup opened for a request cancelled in the meantime."""
    if not job.cancelled() and job.exception() is None:
        found = job.result()
        if isinstance(found, _Opened):
            found.fobj.close()


class StaticFiles:
    """Go's ``http.FileServer(http.Dir(root))`` behind ``http.StripPrefix``, kept inside
    ``root``. ``root`` need not exist or be a directory: requests then get Go's answers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.path.abspath(os.fspath(root))

    async def handle(self, request: Request, path: str) -> Answer:
        """Answer ``request`` for ``path``: percent-decoded, www prefix stripped."""
        url = path if path.startswith("/") else "/" + path  # Go's r.URL.Path
        query = request.raw_path.partition("?")[2]  # Go's r.URL.RawQuery
        if url.endswith("/index.html"):  # serveFile redirects before any lookup
            return self._answer(request, _redirect("./", query))
        name = gopath.clean(url)
        if "\0" in name:  # filepath.Localize: "invalid or unsafe file path" → 500
            return self._answer(request, _SERVER_ERROR)
        job = asyncio.get_running_loop().run_in_executor(None, self._lookup, name, url, query)
        try:
            found = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(_discard)
            raise
        if isinstance(found, _Answer):
            return self._answer(request, found)
        return self._serve(request, found)

    @staticmethod
    def _answer(request: Request, answer: _Answer) -> Answer:
        ims = request.headers.get("If-Modified-Since", "")
        if request.method in _GET_HEAD and _not_after(ims, answer.mtime):
            return Response(status=304)  # a listing: Go sets no Last-Modified here
        return Response(status=answer.status, body=answer.body or None, headers=answer.headers)

    def _serve(self, request: Request, found: _Opened) -> Answer:
        """Go's serveContent for an opened regular file."""
        method, size, ctype = request.method, found.size, found.ctype
        fobj: io.FileIO | None = found.fobj
        mtime = _seconds(found.mtime_ns)
        last_mod = {} if mtime is None else {"Last-Modified": http_date(mtime)}
        try:
            status = _preconditions(method, request.headers, mtime)
            if status is not None:  # writeNotModified and 412 keep only Last-Modified
                return Response(status=status, headers=last_mod)
            rng = _range_header(method, request.headers, found.mtime_ns // 1_000_000_000)
            ranges = _parse_range(rng, size)
            if ranges == _NO_OVERLAP and size == 0:
                ranges = []  # Go: a Range on an empty file gets the (empty) file, 200
            if isinstance(ranges, str):  # Go 1.23's serveError drops Last-Modified
                extra = {"Content-Range": f"bytes */{size}"} if ranges == _NO_OVERLAP else {}
                return self._answer(request, _error(416, ranges, extra))
            if sum(n for _, n in ranges) > size:
                ranges = []  # Go: more bytes than the file has is an attack; send it once
            headers = {"Accept-Ranges": "bytes", **last_mod}
            parts: tuple[tuple[bytes, int, int], ...] = ((b"", 0, size),)
            trailer = b""
            if len(ranges) == 1:
                ((start, n),) = ranges
                parts = ((b"", start, n),)
                headers["Content-Range"] = f"bytes {start}-{start + n - 1}/{size}"
            elif ranges:
                parts, trailer, ctype = _multipart(ranges, size, ctype)
            length = sum(len(head) + n for head, _, n in parts) + len(trailer)
            headers |= {"Content-Length": str(length), "Content-Type": ctype}
            status = 206 if ranges else 200
            if method == "HEAD":
                return _FileResponse(status, headers)
            response, fobj = _FileResponse(status, headers, fobj, parts, trailer), None
            return response
        finally:
            if fobj is not None:
                fobj.close()

    # The blocking part, run in the default executor.
    def _lookup(self, name: str, url: str, query: str) -> _Answer | _Opened:
        """Go's serveFile, from Dir.Open to the choice of redirect, listing or file."""
        root = os.path.realpath(self._root)
        path = os.path.join(self._root, name[1:])
        opened = self._open(root, path)
        if isinstance(opened, _Answer):
            return opened
        fd, st = opened
        try:
            if stat.S_ISDIR(st.st_mode):
                if not url.endswith("/"):
                    return _redirect(gopath.base(url) + "/", query)
                path = os.path.join(path, "index.html")
                index = self._open(root, path)
                if not isinstance(index, _Answer):
                    os.close(fd)
                    fd, st = index
                if isinstance(index, _Answer) or stat.S_ISDIR(st.st_mode):
                    return _listing(fd, _seconds(st.st_mtime_ns))
            elif url.endswith("/"):
                if gopath.base(url) in ("/", "."):  # "/" or "/./" is a file: root is no directory
                    return _error(500, "http: attempting to traverse a non-directory")
                return _redirect("../" + gopath.base(url), query)
            if not stat.S_ISREG(st.st_mode):
                return _NOT_FOUND  # kproxy: no FIFOs, sockets or devices
            basename = os.path.basename(path.rstrip("/"))
            dot = basename.rfind(".")  # Go's filepath.Ext; TypeByExtension ignores case
            ctype = _TYPES.get(basename[dot:].lower()) if dot >= 0 else None
            ctype = ctype or _detect_content_type(os.pread(fd, 512, 0))
            os.set_blocking(fd, True)
            fobj = io.FileIO(fd, "rb")
            fd = -1
            return _Opened(fobj, st.st_size, st.st_mtime_ns, ctype)
        except OSError:
            return _SERVER_ERROR
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _open(root: str, path: str) -> tuple[int, os.stat_result] | _Answer:
        """Go's Dir.Open and Stat; kproxy: whatever resolves outside ``root`` is a 404."""
        try:
            real = os.path.realpath(path)
            if real != root and os.path.commonpath((root, real)) != root:
                return _NOT_FOUND
            # Open the checked path itself; O_NOFOLLOW guards its last component against a
            # swap, O_NONBLOCK keeps a FIFO from hanging the thread.
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except ValueError:  # a name the filesystem cannot encode
            return _NOT_FOUND
        except OSError as exc:
            return _open_error(exc)
        try:
            return fd, os.fstat(fd)
        except OSError:
            os.close(fd)
            return _SERVER_ERROR
