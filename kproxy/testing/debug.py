"""Test aids under ``/debug/kproxy/``: not part of any real API server.

They let proxy tests look at exactly what arrived and make the upstream misbehave on
purpose. Every endpoint sits behind the same authentication as the API.

==========================  ===================================================================
``echo[/ANY/PATH]``         JSON: method, raw path, raw query, headers as ``[name, value]`` pairs
                            in wire order and case, body length and sha256
``bytes?size=N``            N bytes of ``pattern()`` in 64 KiB writes, Content-Length set;
                            ``&chunked=1`` for chunked transfer encoding instead
``upload``                  consumes the body as it streams in; JSON ``{length, sha256}``
``chunks?n=N&interval=S``   N chunks ``chunk i\\n`` (chunked), S seconds apart (default 0.1)
``status?code=N``           answers N with a ``Status`` body
``gzip?size=N``             N pattern bytes, gzip-encoded if ``Accept-Encoding`` allows gzip
``slow-headers?delay=S``    waits S seconds before sending the headers
``redirect?to=URL``         302 to URL (default ``/debug/kproxy/echo``)
``hangup``                  closes the connection without an answer
``garbage``                 answers bytes that are not HTTP, then closes
==========================  ===================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import parse_qs

from aiohttp import web

__all__ = ["DEBUG_PREFIX", "accepts_gzip", "handle_debug", "pattern"]

DEBUG_PREFIX = "/debug/kproxy/"
_CHUNK = 64 * 1024
_BLOCK = bytes(range(251)) * ((_CHUNK // 251) + 2)  # 251 is prime: no alignment with 64 KiB


def pattern(size: int, offset: int = 0) -> bytes:
    """The deterministic body of ``bytes?size=N``: byte i is ``i % 251``."""
    out = bytearray()
    position = offset
    while len(out) < size:
        start = position % 251
        take = min(size - len(out), len(_BLOCK) - start)
        out += _BLOCK[start : start + take]
        position += take
    return bytes(out)


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


def _query(request: web.BaseRequest) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}


def _number(query: dict[str, str], name: str, default: float) -> float:
    try:
        return float(query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number\n") from None


async def _echo(request: web.BaseRequest) -> web.StreamResponse:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        length += len(chunk)
    raw_path, _, raw_query = request.raw_path.partition("?")
    body = {
        "method": request.method,
        "path": raw_path,
        "query": raw_query,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "body_length": length,
        "body_sha256": digest.hexdigest(),
    }
    return web.json_response(body)


async def _bytes(request: web.BaseRequest) -> web.StreamResponse:
    query = _query(request)
    size = int(_number(query, "size", 0))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if query.get("chunked") in ("1", "true"):
        response.enable_chunked_encoding()
    else:
        response.content_length = size
    await response.prepare(request)
    sent = 0
    with contextlib.suppress(ConnectionError):  # the client may leave early
        while sent < size:
            take = min(_CHUNK, size - sent)
            await response.write(pattern(take, sent))
            sent += take
    return response


async def _upload(request: web.BaseRequest) -> web.StreamResponse:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        length += len(chunk)
    return web.json_response({"length": length, "sha256": digest.hexdigest()})


async def _chunks(request: web.BaseRequest) -> web.StreamResponse:
    query = _query(request)
    count = int(_number(query, "n", 3))
    interval = _number(query, "interval", 0.1)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for i in range(count):
            if i:
                await asyncio.sleep(interval)
            await response.write(f"chunk {i}\n".encode())
    return response


async def _status(request: web.BaseRequest) -> web.StreamResponse:
    code = int(_number(_query(request), "code", 200))
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    reason = phrase.replace(" ", "").replace("-", "")
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": f"debug status {code}",
        "reason": reason,
        "code": code,
    }
    return web.Response(status=code, body=json.dumps(status).encode() + b"\n", content_type="application/json")


async def _gzip(request: web.BaseRequest) -> web.StreamResponse:
    size = int(_number(_query(request), "size", 1024))
    data = pattern(size)
    headers = {"Content-Type": "application/octet-stream", "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        headers["Content-Encoding"] = "gzip"
        data = gzip.compress(data, compresslevel=1)
    return web.Response(body=data, headers=headers)


async def _hangup(request: web.BaseRequest) -> web.StreamResponse:
    # What a server closing an idle keep-alive connection looks like to the client.
    assert request.transport is not None
    request.transport.close()
    raise asyncio.CancelledError


async def _garbage(request: web.BaseRequest) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.write(b"this is not HTTP\r\n\r\n")
    request.transport.close()
    raise asyncio.CancelledError


async def _slow_headers(request: web.BaseRequest) -> web.StreamResponse:
    await asyncio.sleep(_number(_query(request), "delay", 1.0))
    return web.Response(text="ok\n")


async def _redirect(request: web.BaseRequest) -> web.StreamResponse:
    location = _query(request).get("to", DEBUG_PREFIX + "echo")
    return web.Response(status=302, headers={"Location": location}, text="redirect\n")


_HANDLERS: dict[str, Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]] = {
    "echo": _echo,
    "bytes": _bytes,
    "upload": _upload,
    "chunks": _chunks,
    "status": _status,
    "gzip": _gzip,
    "slow-headers": _slow_headers,
    "hangup": _hangup,
    "garbage": _garbage,
    "redirect": _redirect,
}


async def handle_debug(request: web.BaseRequest, name: str) -> web.StreamResponse:
    """Serve ``/debug/kproxy/NAME``; ``echo`` also answers for any path below it."""
    if name.startswith("echo/"):
        name = "echo"
    handler = _HANDLERS.get(name)
    if handler is None:
        return web.Response(status=404, text="404 page not found\n", content_type="text/plain")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return web.Response(status=exc.status, text=exc.text, content_type="text/plain")
