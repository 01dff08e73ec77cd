"""Connection upgrades (exec, attach, portforward): the handshake, then the real protocols.

kube-apiserver hands these connections to the kubelet; the fake serves them itself:

* **WebSocket** (``Upgrade: websocket``, a GET): ``Sec-WebSocket-Accept`` computed from
  ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2), the subprotocol chosen from the client's list:
  ``v5.channel.k8s.io`` or ``v4.channel.k8s.io`` for exec/attach (``exec_websocket``),
  ``SPDY/3.1+portforward.k8s.io`` for port-forward (SPDY tunneled in binary messages,
  ``portforward``) or ``v4.channel.k8s.io`` (kubelet's channels, ``portforward_ws``).
  Offering none of them is a ``400``, which kubectl takes as "upgrade failed" and
  retries over SPDY.
* **SPDY** (``Upgrade: SPDY/3.1``, a POST): the first protocol of the client's
  ``X-Stream-Protocol-Version`` list the fake supports (``v5``/``v4.channel.k8s.io``;
  ``portforward.k8s.io``), else ``403`` with kubelet's message; then SPDY/3.1 frames
  (``spdy_session``, with exec/attach in ``exec_spdy``). aiohttp's parser treats only
  ``websocket`` as an upgrade, so the later bytes would be parsed as new HTTP requests:
  ``request.protocol.set_parser()`` (what aiohttp's own ``WebSocketResponse`` does) sends
  every byte after the 101 to the session instead.

Every upgraded connection is recorded in the server's
:class:`~kproxy.testing.runtime.PodRuntime` (transport, subprotocol, command, open or not).

**Raw modes**, for proxy tests that want bytes, not a protocol: an ``exec`` that asks for
neither stdout nor stderr (e.g. ``?command=echo``, or ``?command=sh&stdin=true``) is
switched (either kind of upgrade, any method) and then **echoes every byte** back until
the client closes; with ``command=garbage`` it first sends :data:`GARBAGE` right behind
the 101 head. kubectl always asks for stdout and stderr, so it never gets a raw session;
the price is that the fake cannot run a stdin-only exec for real.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

from kproxy.testing.exec_session import EXEC_PROTOCOLS, ExecRequest
from kproxy.testing.exec_spdy import serve_spdy as serve_exec_spdy
from kproxy.testing.exec_websocket import serve_websocket as serve_exec_websocket
from kproxy.testing.portforward import PORTFORWARD_PROTOCOL, WEBSOCKET_TUNNEL_PROTOCOL, serve_portforward
from kproxy.testing.portforward_ws import CHANNEL_PROTOCOLS, parse_ports, serve_channel_portforward
from kproxy.testing.runtime import PodRuntime, UpgradeSession
from kproxy.testing.spdy_session import SpdySession
from kproxy.testing.status import ApiError

__all__ = ["BEARER_PROTOCOL_PREFIX", "GARBAGE", "is_upgrade", "serve_upgrade", "upgrade_and_echo"]

BEARER_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."
GARBAGE = b"\x00\xffnot a protocol\r\n\r\nHTTP/1.1 200 OK\r\n\x80\x03\x00\x01" + bytes(range(256))
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_HIGH_WATER = 1 << 20
_WS_CLOSE_TIMEOUT = 5.0  # how long close() waits for the client's close frame
_WS_MAX_MESSAGE = 16 << 20


def is_upgrade(request: web.BaseRequest) -> bool:
    """kube-apiserver's test: a ``Connection`` header naming ``upgrade`` and an ``Upgrade`` header."""
    connection = ",".join(request.headers.getall("Connection", ()))
    tokens = {t.strip().lower() for t in connection.split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


async def serve_upgrade(
    request: web.BaseRequest,
    runtime: PodRuntime,
    stopping: asyncio.Event,
    kind: str,
    namespace: str,
    pod: Mapping[str, Any],
) -> web.StreamResponse:
    """Serve ``pods/exec``, ``pods/attach`` or ``pods/portforward`` for ``pod``.

    Raises :class:`ApiError` (before anything is sent) for requests kube-apiserver or the
    kubelet would refuse.
    """
    if not is_upgrade(request):
        raise ApiError.bad_request("Upgrade request required")
    query = parse_qs(request.query_string, keep_blank_values=True)
    name = str(pod.get("metadata", {}).get("name", ""))
    upgrade = request.headers["Upgrade"].strip().lower()
    websocket = upgrade == "websocket"
    raw = _raw_word(query) if kind == "exec" else None
    if raw is not None:
        record = UpgradeSession("raw", namespace, name, "websocket" if websocket else "spdy", "", command=(raw,))
        runtime.start(record, request.transport)
        try:
            response = await upgrade_and_echo(request, stopping, greeting=GARBAGE if raw == "garbage" else b"")
        finally:
            runtime.finish(record)
        if response is None:
            raise ApiError.bad_request("invalid WebSocket handshake: Sec-WebSocket-Key must be 16 base64 bytes")
        return response
    if not websocket and upgrade != "spdy/3.1":
        raise ApiError.bad_request(f"unable to upgrade: unsupported protocol {request.headers['Upgrade']!r}")
    exec_request: ExecRequest | None = None
    if kind in ("exec", "attach"):
        exec_request = _exec_request(kind, namespace, pod, query)
        protocols: tuple[str, ...] = EXEC_PROTOCOLS
        record = UpgradeSession(
            kind,
            namespace,
            name,
            "",
            "",
            container=exec_request.container,
            command=exec_request.command,
            stdin=exec_request.stdin,
            tty=exec_request.tty,
        )
    else:
        protocols = (WEBSOCKET_TUNNEL_PROTOCOL, *CHANNEL_PROTOCOLS) if websocket else (PORTFORWARD_PROTOCOL,)
        if websocket and not _tunnel_offered(request):
            parse_ports(query)  # kubelet's 400 for missing or bad ports, before the upgrade
        record = UpgradeSession(kind, namespace, name, "", "")
    if websocket:
        return await _websocket(request, runtime, stopping, protocols, record, exec_request)
    return await _spdy(request, runtime, stopping, protocols, record, exec_request)


def _tunnel_offered(request: web.BaseRequest) -> bool:
    offered = ",".join(request.headers.getall("Sec-WebSocket-Protocol", ()))
    return WEBSOCKET_TUNNEL_PROTOCOL in {p.strip() for p in offered.split(",")}


def _raw_word(query: Mapping[str, list[str]]) -> str | None:
    """``echo`` or ``garbage`` for a raw session, None for a real one."""
    if _flag(query, "stdout") or _flag(query, "stderr") or _flag(query, "tty"):
        return None
    command = query.get("command", [])
    return "garbage" if command == ["garbage"] else "echo"


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    values = query.get(name) or [""]
    return values[-1] in ("1", "t", "T", "true", "TRUE", "True")  # Go's ParseBool


def _exec_request(kind: str, namespace: str, pod: Mapping[str, Any], query: Mapping[str, list[str]]) -> ExecRequest:
    name = str(pod.get("metadata", {}).get("name", ""))
    spec = pod.get("spec", {})
    containers = [str(c.get("name", "")) for c in spec.get("containers", [])]
    ephemeral = [str(c.get("name", "")) for c in spec.get("ephemeralContainers") or []]
    container = (query.get("container") or [""])[-1]
    if not container:
        if len(containers) == 1:
            container = containers[0]
        elif not containers:
            raise ApiError.bad_request(f"a container name must be specified for pod {name}")
        else:
            raise ApiError.bad_request(
                f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
            )
    elif container not in containers + ephemeral:
        raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
    command = tuple(query.get("command", ()))
    if kind == "attach" and container in ephemeral:
        # kubectl debug attaches to the ephemeral container: what runs there is its command.
        debug = next(c for c in spec["ephemeralContainers"] if c.get("name") == container)
        command = tuple(str(a) for a in [*(debug.get("command") or []), *(debug.get("args") or [])])
    if kind == "exec" and not command:
        raise ApiError.bad_request("you must specify at least 1 command")
    request = ExecRequest(
        kind,
        namespace,
        name,
        container,
        command,
        stdin=_flag(query, "stdin"),
        stdout=_flag(query, "stdout"),
        stderr=_flag(query, "stderr"),
        tty=_flag(query, "tty"),
    )
    if not (request.stdin or request.stdout or request.stderr):
        raise ApiError.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return request


async def _until_stopped(work: Awaitable[None], stopping: asyncio.Event) -> bool:
    """Run ``work`` until it ends (True) or the server stops (False)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            return True
        return False
    finally:
        for t in (task, stop):
            t.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)


async def _websocket(
    request: web.BaseRequest,
    runtime: PodRuntime,
    stopping: asyncio.Event,
    protocols: tuple[str, ...],
    record: UpgradeSession,
    exec_request: ExecRequest | None,
) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        protocols=protocols, timeout=_WS_CLOSE_TIMEOUT, max_msg_size=_WS_MAX_MESSAGE, compress=False
    )
    ready = ws.can_prepare(request)
    if not ready.ok:
        raise ApiError.bad_request("invalid WebSocket handshake (RFC 6455 §4.2.1)")
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    # kubelet's port-forward also speaks its channels with no subprotocol at all (kr8s does).
    channels_unnamed = record.kind == "portforward" and not offered.strip()
    if ready.protocol is None and not channels_unnamed:
        raise ApiError.bad_request(
            f"unable to upgrade: none of the WebSocket subprotocols {offered!r} is supported; "
            f"supported: {', '.join(protocols)}"
        )
    chosen = ready.protocol or ""
    record.transport, record.protocol = "websocket", chosen
    runtime.start(record, request.transport)
    try:
        await ws.prepare(request)
        if exec_request is not None:
            fs = runtime.filesystem(record.namespace, record.pod, record.container)
            work = serve_exec_websocket(ws, exec_request, fs, record, runtime.network)
            ended = await _until_stopped(work, stopping)
        elif chosen in CHANNEL_PROTOCOLS or channels_unnamed:
            ports = parse_ports(parse_qs(request.query_string, keep_blank_values=True))
            ended = await _until_stopped(serve_channel_portforward(ws, runtime, record, ports), stopping)
        else:
            session = SpdySession(ws.send_bytes)
            pump = asyncio.ensure_future(_pump_websocket(ws, session))
            try:
                ended = await _until_stopped(serve_portforward(session, runtime, record), stopping)
            finally:
                await session.aclose()
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        # A server going away mid-session sends no close frame: the client must not take
        # the end of the connection for the end of the command.
        if ended and not ws.closed:
            await ws.close(code=1000)
    finally:
        if request.transport is not None and not request.transport.is_closing():
            request.transport.close()
        runtime.finish(record)
    return ws


async def _pump_websocket(ws: web.WebSocketResponse, session: SpdySession) -> None:
    """Binary messages in, SPDY bytes out: the tunnel's receiving half."""
    try:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                session.feed(msg.data)
            elif msg.type != WSMsgType.TEXT:  # close, closing, closed, error
                break
    finally:
        session.feed_eof()


class _SessionParser:
    """Hands the raw bytes after the 101 to a SPDY session (the ``set_parser`` protocol)."""

    def __init__(self, session: SpdySession) -> None:
        self._session = session

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._session.feed(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._session.feed_eof()


def _spdy_handshake(request: web.BaseRequest, protocols: tuple[str, ...]) -> dict[str, str]:
    offered = [
        p.strip()
        for value in request.headers.getall("X-Stream-Protocol-Version", ())
        for p in value.split(",")
        if p.strip()
    ]
    chosen = next((p for p in offered if p in protocols), None)
    if chosen is None:
        # kubelet's httpstream.Handshake answers 403 with this text.
        raise ApiError(
            403,
            "Forbidden",
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
            f"server supports {list(protocols)}",
        )
    return {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": chosen}


async def _spdy(
    request: web.BaseRequest,
    runtime: PodRuntime,
    stopping: asyncio.Event,
    protocols: tuple[str, ...],
    record: UpgradeSession,
    exec_request: ExecRequest | None,
) -> web.StreamResponse:
    headers = _spdy_handshake(request, protocols)
    record.transport, record.protocol = "spdy", headers["X-Stream-Protocol-Version"]
    runtime.start(record, request.transport)
    response = _Switched(headers)
    try:
        await response.prepare(request)
        session = SpdySession(response.write)
        protocol: Any = request.protocol  # set_parser is typed for WebSocketReader; any feed_data/feed_eof works
        protocol.set_parser(_SessionParser(session))  # every later byte of this connection goes to the session
        protocol.keep_alive(False)
        try:
            if exec_request is not None:
                fs = runtime.filesystem(record.namespace, record.pod, record.container)
                await _until_stopped(serve_exec_spdy(session, exec_request, fs, record, runtime.network), stopping)
            else:
                await _until_stopped(serve_portforward(session, runtime, record), stopping)
        finally:
            await session.aclose()
    finally:
        if request.transport is not None and not request.transport.is_closing():
            request.transport.close()
        runtime.finish(record)
    return response


# -- raw modes ----------------------------------------------------------------------------


class _EchoParser:
    """Receives the raw bytes after the 101 (the ``set_parser`` protocol: feed_data, feed_eof)."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._protocol: Any = request.protocol
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._wakeup = asyncio.Event()
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.append(bytes(data))
        self._size += len(data)
        self._wakeup.set()
        if self._size > _HIGH_WATER:
            self._protocol.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self._wakeup.set()

    async def read(self) -> bytes | None:
        """The next received bytes, or None at end of stream."""
        while not self._chunks:
            if self.eof:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if self._size <= _HIGH_WATER // 2:
            self._protocol.resume_reading()
        return data


class _Switched(web.StreamResponse):
    """A 101 whose body is the raw upgraded stream."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(status=101, reason="Switching Protocols", headers=headers)
        self.force_close()


def _handshake_headers(request: web.BaseRequest) -> dict[str, str] | None:
    upgrade = request.headers["Upgrade"]
    headers = {"Connection": "Upgrade", "Upgrade": upgrade}
    if upgrade.strip().lower() == "websocket":
        key = request.headers.get("Sec-WebSocket-Key", "")
        try:
            valid = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid = False
        if not valid:
            return None
        headers["Sec-WebSocket-Accept"] = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
        offered = [
            p.strip()
            for value in request.headers.getall("Sec-WebSocket-Protocol", ())
            for p in value.split(",")
            if p.strip() and not p.strip().startswith(BEARER_PROTOCOL_PREFIX)
        ]
        if offered:
            headers["Sec-WebSocket-Protocol"] = offered[0]
    else:
        offered = [
            p.strip()
            for value in request.headers.getall("X-Stream-Protocol-Version", ())
            for p in value.split(",")
            if p.strip()
        ]
        if offered:
            headers["X-Stream-Protocol-Version"] = offered[0]
    return headers


async def upgrade_and_echo(
    request: web.BaseRequest, stopping: asyncio.Event, greeting: bytes = b""
) -> web.StreamResponse | None:
    """Switch protocols, send ``greeting``, then echo until the client closes or ``stopping`` is set.

    The handshake is done faithfully for either kind of upgrade, but no framing follows.
    Returns None (and sends nothing) when the handshake is invalid: the caller answers 400.
    """
    headers = _handshake_headers(request)
    if headers is None:
        return None
    response = _Switched(headers)
    await response.prepare(request)
    parser = _EchoParser(request)
    protocol: Any = request.protocol  # set_parser is typed for WebSocketReader; any feed_data/feed_eof works
    protocol.set_parser(parser)  # every later byte of this connection goes to parser
    protocol.keep_alive(False)
    stop = asyncio.ensure_future(stopping.wait())
    read: asyncio.Future[bytes | None] | None = None
    try:
        if greeting:
            await response.write(greeting)
        while True:
            read = asyncio.ensure_future(parser.read())
            done, _ = await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                break
            data = read.result()
            if data is None:
                break
            # No Content-Length and no chunking on a 101: write() sends the bytes as they are
            # and waits for the transport to drain when its buffer is full.
            await response.write(data)
    except ConnectionError:
        pass  # the client went away mid-echo
    finally:
        stop.cancel()
        if read is not None:
            read.cancel()
        transport = request.transport
        if transport is not None and not transport.is_closing():
            transport.close()
    return response
