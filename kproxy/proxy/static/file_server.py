"""The ``--www`` file server: Go's ``http.FileServer(http.Dir(root))`` behind ``http.StripPrefix``.

In: a :class:`~kproxy.http.server.Request` and its percent-decoded path, www prefix
stripped. Out: kubectl 1.32's answer (Go 1.23 ``net/http/fs.go``, docs/kubectl-proxy.md §9):

* ``path.Clean`` clamped at the root; ``localRedirect`` 301s: ``…/index.html`` → ``./``,
  ``dir`` → ``dir/``, ``file/`` → ``../file``;
* a directory's ``index.html``, else its ``dirList`` (:mod:`~kproxy.proxy.static.listing`);
  ``http.Error`` 404/403/500 (a root that is a file: ``/`` → 500 "attempting to traverse
  a non-directory", the rest 404);
* files as ``serveContent`` serves them: the Content-Type by name or sniffed
  (:mod:`~kproxy.proxy.static.content_type`), preconditions
  (:mod:`~kproxy.proxy.static.conditional`), ranges
  (:mod:`~kproxy.proxy.static.byte_ranges`), the body streamed
  (:mod:`~kproxy.proxy.static.file_response`). Any method; HEAD gets the headers only.

Every filesystem call runs in the default executor, off the event loop.

Improvements over kubectl: (1) nothing outside the root is served: a path whose real
path (symlinks resolved) leaves the root's real path is a 404 like a missing file; links
within the root work. The checked real path is what gets opened (``O_NOFOLLOW``); only a
parent directory swapped concurrently could escape (Python lacks ``openat2``'s
``RESOLVE_BENEATH``). (2) FIFOs, sockets and devices are 404s (Go blocks on a FIFO).

Deviations: listings always carry Content-Length (Go chunks past 2 KiB); a 301 to HEAD
says ``Content-Length: 0``.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import stat
from dataclasses import dataclass, field

from kproxy.http import Answer, Request, Response, http_date, http_error
from kproxy.policy import gopath
from kproxy.proxy.static.byte_ranges import NO_OVERLAP, Part, multipart, ranges_to_send
from kproxy.proxy.static.conditional import GET_HEAD, not_modified_since, preconditions, range_header
from kproxy.proxy.static.content_type import HTML, detect_content_type, type_by_extension
from kproxy.proxy.static.file_response import FileResponse
from kproxy.proxy.static.listing import dir_list

__all__ = ["StaticFiles"]


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
    """Go's http.Error (the one plain-text error writer, kproxy.http.http_error)."""
    response = http_error(status, text, headers)
    return _Answer(status, response.body, dict(response.headers))


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
    """Go's dirList, as a whole answer. DirEntry.IsDir does not follow symlinks."""
    try:
        with os.scandir(fd) as it:
            entries = [(os.fsencode(e.name), e.is_dir(follow_symlinks=False)) for e in it]
    except OSError:
        return _error(500, "Error reading directory")
    headers = {"Content-Type": HTML}
    if mtime is not None:
        headers["Last-Modified"] = http_date(mtime)
    return _Answer(200, dir_list(entries), headers, mtime)


def _seconds(mtime_ns: int) -> int | None:
    """Whole seconds, as Last-Modified has them; the epoch means unknown (isZeroTime)."""
    return mtime_ns // 1_000_000_000 if mtime_ns else None


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
        if request.method in GET_HEAD and not_modified_since(ims, answer.mtime):
            return Response(status=304)  # a listing: Go sets no Last-Modified here
        return Response(status=answer.status, body=answer.body or None, headers=answer.headers)

    def _serve(self, request: Request, found: _Opened) -> Answer:
        """Go's serveContent for an opened regular file."""
        method, size, ctype = request.method, found.size, found.ctype
        fobj: io.FileIO | None = found.fobj
        mtime = _seconds(found.mtime_ns)
        last_mod = {} if mtime is None else {"Last-Modified": http_date(mtime)}
        try:
            status = preconditions(method, request.headers, mtime)
            if status is not None:  # writeNotModified and 412 keep only Last-Modified
                return Response(status=status, headers=last_mod)
            rng = range_header(method, request.headers, found.mtime_ns // 1_000_000_000)
            ranges = ranges_to_send(rng, size)
            if isinstance(ranges, str):  # Go 1.23's serveError drops Last-Modified
                extra = {"Content-Range": f"bytes */{size}"} if ranges == NO_OVERLAP else {}
                return self._answer(request, _error(416, ranges, extra))
            headers = {"Accept-Ranges": "bytes", **last_mod}
            parts: tuple[Part, ...] = ((b"", 0, size),)
            trailer = b""
            if len(ranges) == 1:
                ((start, n),) = ranges
                parts = ((b"", start, n),)
                headers["Content-Range"] = f"bytes {start}-{start + n - 1}/{size}"
            elif ranges:
                parts, trailer, ctype = multipart(ranges, size, ctype)
            length = sum(len(head) + n for head, _, n in parts) + len(trailer)
            headers |= {"Content-Length": str(length), "Content-Type": ctype}
            status = 206 if ranges else 200
            if method == "HEAD":
                return FileResponse(status, headers)
            response, fobj = FileResponse(status, headers, fobj, parts, trailer), None
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
            ctype = type_by_extension(os.path.basename(path.rstrip("/")))
            ctype = ctype or detect_content_type(os.pread(fd, 512, 0))
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
