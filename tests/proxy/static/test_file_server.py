"""kproxy.proxy.static.file_server against docs/kubectl-proxy.md §9: Go's http.FileServer as kubectl 1.32
serves --www, end to end.

kproxy's own HTTPServer on 127.0.0.1 port 0 strips ``/static`` from the percent-decoded
path (as the router does) and calls ``StaticFiles.handle``; requests go out as raw bytes
so status lines, headers and bodies are checked exactly as sent. The pure parts have
their own tables next to this file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from urllib.parse import unquote

import pytest

from kproxy.http import Answer, HTTPServer, Request
from kproxy.proxy.static import StaticFiles
from kproxy.proxy.static.file_server import _Opened
from tests.waiting import until

MTIME = 1_700_000_000
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
OLDER, NEWER = "Tue, 14 Nov 2023 22:13:19 GMT", "Tue, 14 Nov 2023 22:13:21 GMT"
TEXT = "text/plain; charset=utf-8"
HELLO = b"hello, static\n"
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(32))
NOT_FOUND = (
    404,
    {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff", "Content-Length": "19"},
    b"404 page not found\n",
)

ROOT_LISTING = b"""<!doctype html>
<meta name="viewport" content="width=device-width">
<pre>
<a href=".hidden">.hidden</a>
<a href="%3Cx%3E.txt">&lt;x&gt;.txt</a>
<a href="Alpha">Alpha</a>
<a href="a&b">a&amp;b</a>
<a href="app.js">app.js</a>
<a href="data.json">data.json</a>
<a href="dir-in">dir-in</a>
<a href="dir-out">dir-out</a>
<a href="empty">empty</a>
<a href="fifo">fifo</a>
<a href="image">image</a>
<a href="link-in">link-in</a>
<a href="link-out">link-out</a>
<a href="q%3F.txt">q?.txt</a>
<a href="sp%20ace/">sp ace/</a>
<a href="sub/">sub/</a>
<a href="sub2/">sub2/</a>
<a href="test.txt">test.txt</a>
</pre>
"""


@pytest.fixture
def www(tmp_path: Path) -> Path:
    """The www root of docs/kubectl-proxy.md §9, plus a file and a directory outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret\n")
    root = tmp_path / "www"
    for rel in ("sub", "sub2", "sp ace"):
        (root / rel).mkdir(parents=True)
    files = {
        "test.txt": HELLO,
        "sub/index.html": b"<p>sub</p>\n",
        "sub2/inner.txt": b"in\n",
        ".hidden": b"dot\n",
        "<x>.txt": b"x\n",
        "q?.txt": b"q\n",
        "a&b": b"ab\n",
        "Alpha": b"A\n",
        "image": PNG,
        "data.json": b'{"a": 1}\n',
        "app.js": b"console.log(1)\n",
        "empty": b"",
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    (root / "link-in").symlink_to("test.txt")
    (root / "link-out").symlink_to(outside / "secret.txt")
    (root / "dir-in").symlink_to("sub2")
    (root / "dir-out").symlink_to(outside)
    os.mkfifo(root / "fifo")
    for p in [*root.rglob("*"), root]:
        if not p.is_symlink():
            os.utime(p, (MTIME, MTIME))
    return root


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # without Date and Connection (the server's own)
    body: bytes

    @property
    def triple(self) -> tuple[int, dict[str, str], bytes]:
        return self.status, self.headers, self.body


@asynccontextmanager
async def serve(root: Path | str) -> AsyncIterator[int]:
    files = StaticFiles(root)

    async def handler(request: Request) -> Answer:
        path = unquote(request.raw_path.partition("?")[0])  # the router's decoding
        assert path.startswith("/static/")
        return await files.handle(request, path.removeprefix("/static"))

    loop = asyncio.get_running_loop()
    http = HTTPServer(handler, loop)
    server = await loop.create_server(http, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await http.shutdown(1.0)
        await server.wait_closed()


@pytest.fixture
async def port(www: Path) -> AsyncIterator[int]:
    async with serve(www) as p:
        yield p


async def fetch(port: int, target: str, method: str = "GET", **headers: str) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if method == "POST":
        head.append("Content-Length: 0")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = raw_head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines)
    for name in ("Date", "Server", "Connection"):
        fields.pop(name, None)
    return Reply(int(status_line.split()[1]), fields, body)


def file_headers(body: bytes, ctype: str) -> dict[str, str]:
    return {
        "Accept-Ranges": "bytes",
        "Last-Modified": LAST_MODIFIED,
        "Content-Length": str(len(body)),
        "Content-Type": ctype,
    }


def listing_headers(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Last-Modified": LAST_MODIFIED,
        "Content-Length": str(len(body)),
    }


# --- Listings and index.html ------------------------------------------------------------
async def test_root_listing_exact_bytes(port: int) -> None:
    r = await fetch(port, "/static/")
    assert r.triple == (200, listing_headers(ROOT_LISTING), ROOT_LISTING)


async def test_listing_head_and_post(port: int) -> None:
    r = await fetch(port, "/static/", "HEAD")
    assert r.triple == (200, listing_headers(ROOT_LISTING), b"")
    r = await fetch(port, "/static/", "POST")
    assert r.triple == (200, listing_headers(ROOT_LISTING), ROOT_LISTING)


async def test_subdirectory_listing_and_index(port: int) -> None:
    listing = (
        b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n'
        b'<pre>\n<a href="inner.txt">inner.txt</a>\n</pre>\n'
    )
    assert (await fetch(port, "/static/sub2/")).triple == (200, listing_headers(listing), listing)
    # A symlink to a directory inside the root is followed.
    assert (await fetch(port, "/static/dir-in/")).triple == (200, listing_headers(listing), listing)
    index = b"<p>sub</p>\n"
    r = await fetch(port, "/static/sub/")
    assert r.triple == (200, file_headers(index, "text/html; charset=utf-8"), index)


async def test_listing_if_modified_since(port: int) -> None:
    # Go checks If-Modified-Since before it sets Last-Modified: a bare 304.
    r = await fetch(port, "/static/", If_Modified_Since=LAST_MODIFIED)
    assert r.triple == (304, {}, b"")
    r = await fetch(port, "/static/", If_Modified_Since=OLDER)
    assert r.status == 200 and r.body == ROOT_LISTING


# --- Redirects (Go's localRedirect) -------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/static/sub", "sub/"),
        ("/static/sp%20ace", "sp ace/"),
        ("/static/sub?x=1&y", "sub/?x=1&y"),
        ("/static/sub/index.html", "./"),
        ("/static/index.html", "./"),  # before any lookup: even when missing
        ("/static/nothing/index.html?q", "./?q"),
        ("/static/test.txt/", "../test.txt"),
        ("/static/%2e%2e/sub", "sub/"),
    ],
)
async def test_redirects(port: int, target: str, location: str) -> None:
    r = await fetch(port, target)
    assert r.triple == (301, {"Location": location, "Content-Length": "0"}, b"")


# --- Files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "body", "ctype"),
    [
        ("test.txt", HELLO, TEXT),
        ("data.json", b'{"a": 1}\n', "application/json"),
        ("app.js", b"console.log(1)\n", "text/javascript; charset=utf-8"),
        ("image", PNG, "image/png"),  # sniffed
        ("Alpha", b"A\n", TEXT),  # sniffed
        (".hidden", b"dot\n", TEXT),  # dotfiles are served
        ("%3Cx%3E.txt", b"x\n", TEXT),
        ("q%3F.txt", b"q\n", TEXT),
        ("a&b", b"ab\n", TEXT),
        ("link-in", HELLO, TEXT),  # a symlink within the root
        ("dir-in/inner.txt", b"in\n", TEXT),
        ("empty", b"", TEXT),
    ],
)
async def test_files(port: int, name: str, body: bytes, ctype: str) -> None:
    r = await fetch(port, "/static/" + name)
    assert r.triple == (200, file_headers(body, ctype), body)


async def test_head_and_post_on_a_file(port: int) -> None:
    r = await fetch(port, "/static/test.txt", "HEAD")
    assert r.triple == (200, file_headers(HELLO, TEXT), b"")
    for method in ("POST", "DELETE"):  # kubectl does not filter static methods
        r = await fetch(port, "/static/test.txt", method)
        assert r.triple == (200, file_headers(HELLO, TEXT), HELLO)


@pytest.mark.parametrize(
    "target",
    [
        "/static/missing.txt",
        "/static/sub/missing/",
        "/static/test.txt/more",  # ENOTDIR, mapped to 404 like Go's mapOpenError
        "/static/link-out",  # kproxy: symlinks out of the root are refused
        "/static/dir-out/secret.txt",
        "/static/dir-out/",
        "/static/%2e%2e/outside/secret.txt",  # clamped to root/outside/...: missing
        "/static/fifo",  # kproxy: no special files (Go would block)
    ],
)
async def test_not_found(port: int, target: str) -> None:
    assert (await fetch(port, target)).triple == NOT_FOUND


async def test_traversal_is_clamped_to_the_root(port: int) -> None:
    for target in ("/static/%2e%2e/test.txt", "/static/%2e%2e/%2e%2e/test.txt", "/static/sub/%2e%2e/%2e%2e/test.txt"):
        r = await fetch(port, target)
        assert r.triple == (200, file_headers(HELLO, TEXT), HELLO)


async def test_nul_is_a_server_error(port: int) -> None:
    # Go's filepath.Localize refuses NUL; toHTTPError makes that a 500.
    r = await fetch(port, "/static/a%00b")
    assert (r.status, r.body) == (500, b"500 Internal Server Error\n")


# --- Ranges -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "content_range", "body"),
    [
        ("bytes=0-4", "bytes 0-4/14", b"hello"),
        ("bytes=7-", "bytes 7-13/14", b"static\n"),
        ("bytes=-7", "bytes 7-13/14", b"static\n"),
        ("bytes=7-100", "bytes 7-13/14", b"static\n"),
        ("bytes=-100", "bytes 0-13/14", HELLO),
        ("bytes= 0 - 1 , 20-", "bytes 0-1/14", b"he"),
    ],
)
async def test_single_range(port: int, spec: str, content_range: str, body: bytes) -> None:
    r = await fetch(port, "/static/test.txt", Range=spec)
    headers = file_headers(body, TEXT) | {"Content-Range": content_range}
    assert r.triple == (206, headers, body)


async def test_head_range(port: int) -> None:
    r = await fetch(port, "/static/test.txt", "HEAD", Range="bytes=0-4")
    assert r.triple == (206, file_headers(b"hello", TEXT) | {"Content-Range": "bytes 0-4/14"}, b"")


@pytest.mark.parametrize(
    ("spec", "content_range", "text"),
    [
        ("bytes=14-", "bytes */14", "invalid range: failed to overlap"),
        ("bytes=100-200, 50-", "bytes */14", "invalid range: failed to overlap"),
        ("bytes=5-1", None, "invalid range"),
        ("bytes=x-1", None, "invalid range"),
        ("items=0-1", None, "invalid range"),
        ("bytes=-", None, "invalid range"),
    ],
)
async def test_unsatisfiable_range(port: int, spec: str, content_range: str | None, text: str) -> None:
    r = await fetch(port, "/static/test.txt", Range=spec)
    body = f"{text}\n".encode()
    # Go 1.23's serveError: http.Error's headers, Last-Modified removed.
    headers = {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff", "Content-Length": str(len(body))}
    if content_range:
        headers["Content-Range"] = content_range
    assert r.triple == (416, headers, body)


async def test_range_on_empty_file_is_ignored(port: int) -> None:
    r = await fetch(port, "/static/empty", Range="bytes=0-10")
    assert r.triple == (200, file_headers(b"", TEXT), b"")


async def test_multiple_ranges_are_multipart(port: int) -> None:
    r = await fetch(port, "/static/test.txt", Range="bytes=0-1,-3")
    assert r.status == 206
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{60})", r.headers["Content-Type"])
    assert m is not None
    b = m[1]
    body = (
        f"--{b}\r\nContent-Range: bytes 0-1/14\r\nContent-Type: {TEXT}\r\n\r\nhe"
        f"\r\n--{b}\r\nContent-Range: bytes 11-13/14\r\nContent-Type: {TEXT}\r\n\r\nic\n"
        f"\r\n--{b}--\r\n"
    ).encode()
    assert r.body == body
    assert r.headers == {
        "Accept-Ranges": "bytes",
        "Last-Modified": LAST_MODIFIED,
        "Content-Length": str(len(body)),
        "Content-Type": m[0],
    }


async def test_overlong_range_set_sends_the_whole_file(port: int) -> None:
    r = await fetch(port, "/static/test.txt", Range="bytes=0-,0-")
    assert r.triple == (200, file_headers(HELLO, TEXT), HELLO)


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        (LAST_MODIFIED, 206),
        (OLDER, 200),
        ('"some-etag"', 200),  # kproxy, like Go, sends no ETag: never a match
        ("garbage", 200),
    ],
)
async def test_if_range(port: int, if_range: str, status: int) -> None:
    r = await fetch(port, "/static/test.txt", Range="bytes=0-4", If_Range=if_range)
    assert (r.status, r.body) == (status, b"hello" if status == 206 else HELLO)


# --- Conditional requests ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {"If_Modified_Since": LAST_MODIFIED}, 304),
        ("GET", {"If_Modified_Since": NEWER}, 304),
        ("HEAD", {"If_Modified_Since": LAST_MODIFIED}, 304),
        ("GET", {"If_Modified_Since": OLDER}, 200),
        ("GET", {"If_Modified_Since": "Tuesday, 14-Nov-23 22:13:20 GMT"}, 304),  # RFC 850
        ("GET", {"If_Modified_Since": "Tue Nov 14 22:13:20 2023"}, 304),  # asctime
        ("GET", {"If_Modified_Since": "not a date"}, 200),
        ("POST", {"If_Modified_Since": LAST_MODIFIED}, 200),  # only GET and HEAD
        ("GET", {"If_None_Match": "*"}, 304),
        ("POST", {"If_None_Match": "*"}, 412),
        ("GET", {"If_None_Match": '"abc", W/"def"'}, 200),
        ("GET", {"If_None_Match": '"abc"', "If_Modified_Since": LAST_MODIFIED}, 200),
        ("GET", {"If_Match": '"abc"'}, 412),
        ("GET", {"If_Match": '"abc", *'}, 200),
        ("GET", {"If_Match": "*", "If_Unmodified_Since": OLDER}, 200),
        ("GET", {"If_Unmodified_Since": OLDER}, 412),
        ("GET", {"If_Unmodified_Since": LAST_MODIFIED}, 200),
        ("GET", {"If_Unmodified_Since": "junk"}, 200),
    ],
)
async def test_conditionals(port: int, method: str, headers: dict[str, str], status: int) -> None:
    r = await fetch(port, "/static/test.txt", method, **headers)
    if status == 200:
        assert r.triple == (200, file_headers(HELLO, TEXT), b"" if method == "HEAD" else HELLO)
    elif status == 304:  # writeNotModified: only Last-Modified stays
        assert r.triple == (304, {"Last-Modified": LAST_MODIFIED}, b"")
    else:
        assert r.triple == (412, {"Last-Modified": LAST_MODIFIED, "Content-Length": "0"}, b"")


# --- Odd roots ----------------------------------------------------------------------------
async def test_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_bytes(b"not a dir\n")
    async with serve(root) as p:
        r = await fetch(p, "/static/")
        body = b"http: attempting to traverse a non-directory\n"
        assert r.triple == (
            500,
            {"Content-Type": TEXT, "X-Content-Type-Options": "nosniff", "Content-Length": str(len(body))},
            body,
        )
        assert (await fetch(p, "/static/x")).triple == NOT_FOUND
        assert (await fetch(p, "/static/x/y/")).triple == NOT_FOUND


async def test_missing_root(tmp_path: Path) -> None:
    async with serve(tmp_path / "missing") as p:
        for target in ("/static/", "/static/x", "/static/a/b/"):
            assert (await fetch(p, target)).triple == NOT_FOUND


async def test_root_through_a_symlink(www: Path, tmp_path: Path) -> None:
    link = tmp_path / "www-link"
    link.symlink_to(www)
    async with serve(link) as p:
        assert (await fetch(p, "/static/test.txt")).body == HELLO
        assert (await fetch(p, "/static/link-in")).body == HELLO
        assert (await fetch(p, "/static/link-out")).triple == NOT_FOUND


# --- Streaming ----------------------------------------------------------------------------
@pytest.fixture
def big(www: Path) -> Iterator[bytes]:
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)
    (www / "big.bin").write_bytes(data)
    yield data


@pytest.mark.parametrize("sendfile", [True, False])
async def test_large_file_streams(port: int, big: bytes, sendfile: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not sendfile:  # uvloop's case: the chunked fallback

        async def no_sendfile(*args: object, **kwargs: object) -> int:
            raise NotImplementedError

        monkeypatch.setattr(asyncio.get_running_loop(), "sendfile", no_sendfile)
    r = await fetch(port, "/static/big.bin")
    assert (r.status, r.headers["Content-Type"], len(r.body)) == (200, "application/octet-stream", len(big))
    assert r.body == big
    r = await fetch(port, "/static/big.bin", Range="bytes=1000000-2000000,-10")
    b = r.headers["Content-Type"].removeprefix("multipart/byteranges; boundary=")
    size = len(big)
    part = b"\r\nContent-Type: application/octet-stream\r\n\r\n"
    assert (r.status, r.body) == (
        206,
        (
            f"--{b}\r\nContent-Range: bytes 1000000-2000000/{size}".encode()
            + part
            + big[1000000:2000001]
            + f"\r\n--{b}\r\nContent-Range: bytes {size - 10}-{size - 1}/{size}".encode()
            + part
            + big[-10:]
            + f"\r\n--{b}--\r\n".encode()
        ),
    )
    assert r.headers["Content-Length"] == str(len(r.body))


async def test_client_leaving_mid_stream(port: int, big: bytes) -> None:
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(1000)
        writer.transport.abort()
    # The server goes on serving; open files were closed (a leak would be a warning).
    assert (await fetch(port, "/static/test.txt")).body == HELLO


async def test_redirect_locations_are_raw_but_single_line(tmp_path: Path) -> None:
    for name in ("é", "a\rb\nc"):
        (tmp_path / name).mkdir()
    async with serve(tmp_path) as p:
        r = await fetch(p, "/static/%C3%A9")
        assert (r.status, r.headers["Location"]) == (301, "Ã©/")  # UTF-8 read as latin-1
        r = await fetch(p, "/static/a%0Db%0Ac")  # Go's headerNewlineToSpace
        assert (r.status, r.headers["Location"]) == (301, "a b c/")


async def test_cancelled_lookup_closes_what_it_opened(www: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = StaticFiles(www)
    started, release = threading.Event(), threading.Event()
    results: list[object] = []
    lookup = files._lookup

    def slow_lookup(name: str, url: str, query: str) -> object:
        started.set()
        release.wait(10)
        results.append(lookup(name, url, query))
        return results[-1]

    monkeypatch.setattr(files, "_lookup", slow_lookup)
    request = SimpleNamespace(method="GET", raw_path="/static/test.txt", headers={})
    task = asyncio.create_task(files.handle(cast(Request, request), "/test.txt"))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    def closed() -> bool:  # the executor job ends on its own; then its file is closed
        return bool(results) and isinstance(results[0], _Opened) and results[0].fobj.closed

    await until(closed, lambda: results, timeout=5.0)
    assert isinstance(results[0], _Opened) and results[0].fobj.closed


async def test_curl(port: int, www: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-i",
        "--path-as-is",
        "-H",
        "Range: bytes=0-4",
        f"http://127.0.0.1:{port}/static/test.txt",
        f"http://127.0.0.1:{port}/static/../test.txt",  # as sent: the handler clamps it
        f"http://127.0.0.1:{port}/static/sub",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    replies = out.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b" ", 1)[0] for r in replies] == [b"206", b"206", b"301"]
    assert replies[0].endswith(b"\r\n\r\nhello") and b"Content-Range: bytes 0-4/14" in replies[0]
    assert b"Location: sub/\r\n" in replies[2]
