"""kproxy.proxy.cross_origin without sockets: the guard as a step of the pipeline, its
answers, and the grant carried by allowed origins' requests (tests/proxy/test_fast.py
checks that the fast path declines requests with ``Origin``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kproxy.http import Request, Response
from kproxy.proxy.pipeline import Pipeline
from tests.doubles import MockTransport
from tests.proxy.fakes import FakeClient
from tests.proxy.test_pipeline import RecordingRelay, build

ALLOWED = "http://localhost:3000"


async def send(p: Pipeline, head: bytes, *, tls: bool = False) -> tuple[Response, Request]:
    client = FakeClient(("127.0.0.1", 5000))
    client.transport = MockTransport(peer=("127.0.0.1", 5000), tls=tls)
    request = client.request(head)
    answer = await p.handle(request)
    assert isinstance(answer, Response), answer
    return answer, request


def pipeline(tmp_path: Path, **flags: object) -> tuple[Pipeline, RecordingRelay]:
    return build(tmp_path, ranges="", cors_allowed_origins=ALLOWED, **flags)


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        (b"POST", b"/api/v1/namespaces/default/pods", b""),
        (b"DELETE", b"/api/v1/namespaces/default/pods/web-0", b""),
        (b"PATCH", b"/api/v1/namespaces/default/pods/web-0", b""),
        (b"PUT", b"/static/a.txt", b""),  # static files are guarded too
        (b"POST", b"/api/v1/namespaces/default/services/web/proxy/form", b""),
        # Upgrades whatever the method: a WebSocket port-forward, a SPDY exec.
        (b"GET", b"/api/v1/namespaces/default/pods/web-0/portforward?ports=80", b"Connection: Upgrade\r\n"),
        (b"POST", b"/api/v1/namespaces/default/pods/web-0/exec?command=sh", b"Connection: Upgrade\r\n"),
    ],
)
@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", b"http://localhost:3001"])
async def test_foreign_pages_are_refused_and_nothing_is_forwarded(
    tmp_path: Path, method: bytes, path: bytes, extra: bytes, origin: bytes
) -> None:
    p, relay = pipeline(tmp_path, reject_paths="")
    head = b"%b %b HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nOrigin: %b\r\n%b" % (method, path, origin, extra)
    answer, _ = await send(p, head)
    status = json.loads(answer.body)
    assert (answer.status, status["kind"], status["reason"], status["code"]) == (403, "Status", "Forbidden", 403)
    assert status["message"].startswith("cross-origin request refused: ")
    assert relay.forwarded == []
    assert not any(name.startswith("Access-Control") for name, _ in answer.headers)


async def test_the_refusal_says_which_origin_and_how_to_allow_it(tmp_path: Path) -> None:
    p, _ = pipeline(tmp_path)
    head = b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: localhost:8001\r\nOrigin: http://Evil.example\r\n"
    message = json.loads((await send(p, head))[0].body)["message"]
    assert message == (
        "cross-origin request refused: a page from http://evil.example may not send 'POST' requests through"
        " kproxy; pages from other origins may only GET, HEAD and OPTIONS; if you trust that page, start kproxy"
        " with --cors-allowed-origins=http://evil.example"
    )
    head = b"GET /api/v1/namespaces/d/pods/x/portforward HTTP/1.1\r\nHost: localhost\r\nOrigin: null\r\n"
    head += b"Connection: Upgrade\r\n"
    message = json.loads((await send(p, head))[0].body)["message"]
    assert message == (
        "cross-origin request refused: a page with Origin 'null' may not open an upgraded connection (WebSocket,"
        " SPDY) through kproxy; pages from other origins may only GET, HEAD and OPTIONS; an opaque or malformed"
        " origin cannot be allowed: serve the page from http:// or https://"
    )


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS"])
async def test_foreign_pages_may_read_nothing_but_safe_methods_pass(tmp_path: Path, method: bytes) -> None:
    p, relay = pipeline(tmp_path)
    head = b"%b /api/v1/pods HTTP/1.1\r\nHost: localhost:8001\r\nOrigin: http://evil.example\r\n" % method
    answer, request = await send(p, head)
    assert answer.status == 200 and relay.forwarded == [(method.decode(), b"/api/v1/pods")]
    assert request.added_lines == b"Vary: Origin\r\n"  # no grant


@pytest.mark.parametrize(
    ("host", "origin", "tls"),
    [
        (b"127.0.0.1:8001", b"http://127.0.0.1:8001", False),
        (b"localhost:8001", b"http://LOCALHOST:8001", False),
        (b"localhost", b"http://localhost:80", False),
        (b"[::1]:8001", b"http://[::1]:8001", False),
        (b"localhost:8443", b"https://localhost:8443", True),  # the scheme comes from the connection
    ],
)
async def test_the_own_origin_passes(tmp_path: Path, host: bytes, origin: bytes, tls: bool) -> None:
    p, relay = build(tmp_path)
    head = b"DELETE /api/v1/namespaces/default/pods/x HTTP/1.1\r\nHost: %b\r\nOrigin: %b\r\n" % (host, origin)
    answer, request = await send(p, head, tls=tls)
    assert answer.status == 200 and len(relay.forwarded) == 1
    assert request.added_lines == b""  # no list, nothing added


async def test_another_scheme_is_another_origin(tmp_path: Path) -> None:
    p, relay = build(tmp_path)
    head = b"DELETE /api/v1/namespaces/default/pods/x HTTP/1.1\r\nHost: localhost:8001\r\nOrigin: https://localhost:8001\r\n"
    assert (await send(p, head))[0].status == 403
    head = head.replace(b"https://", b"http://")
    assert (await send(p, head, tls=True))[0].status == 403
    assert relay.forwarded == []


async def test_allowed_origins_pass_and_their_answers_carry_the_grant(tmp_path: Path) -> None:
    p, relay = pipeline(tmp_path)
    head = b"DELETE /api/v1/namespaces/default/pods/x HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nOrigin: http://localhost:3000\r\n"
    answer, request = await send(p, head)
    assert answer.status == 200 and relay.forwarded == [("DELETE", b"/api/v1/namespaces/default/pods/x")]
    lines = request.added_lines.decode()
    assert "Access-Control-Allow-Origin: http://localhost:3000\r\n" in lines and "Vary: Origin\r\n" in lines
    # kproxy's own answers carry it too: a filter refusal, a static file.
    head = b"GET /api/v1/pods HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://localhost:3000\r\n"
    answer, request = await send(p, head)
    assert answer.status == 403 and b"Access-Control-Allow-Origin" in request.added_lines
    # The real connection adds them to whatever is written: FakeClient does the same.
    answer.send(request)
    sent = request.protocol.sent  # type: ignore[attr-defined]
    assert b"X-Kproxy-Rejected-By" in sent[-1][1] and b"Access-Control-Allow-Origin" in sent[-1][1]


async def test_allowed_origins_may_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kproxy.proxy import pipeline as pipeline_module

    upgraded: list[bytes] = []

    async def splice(relay: object, request: Request, target: bytes, impersonate: object = None) -> Response:
        upgraded.append(target)
        return Response(101)

    monkeypatch.setattr(pipeline_module, "upgrade", splice)
    p, _ = pipeline(tmp_path)
    head = (
        b"GET /api/v1/namespaces/d/pods/x/portforward?ports=80 HTTP/1.1\r\nHost: localhost\r\n"
        b"Origin: http://localhost:3000\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    )
    assert (await send(p, head))[0].status == 101
    assert upgraded == [b"/api/v1/namespaces/d/pods/x/portforward?ports=80"]


def preflight(origin: bytes, method: bytes, headers: bytes = b"") -> bytes:
    head = b"OPTIONS /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nOrigin: %b\r\n" % origin
    head += b"Access-Control-Request-Method: %b\r\n" % method
    if headers:
        head += b"Access-Control-Request-Headers: %b\r\n" % headers
    return head


async def test_preflights_are_answered_by_kproxy(tmp_path: Path) -> None:
    p, relay = pipeline(tmp_path, reject_methods="^PUT$")
    answer, _ = await send(p, preflight(b"http://localhost:3000", b"DELETE", b"content-type,authorization"))
    assert answer.status == 204 and answer.body == b""
    assert dict(answer.headers) == {
        "Access-Control-Allow-Origin": "http://localhost:3000",
        "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE",  # PUT is rejected by the filter
        "Access-Control-Allow-Headers": "content-type, authorization",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    assert relay.forwarded == []


@pytest.mark.parametrize(
    ("origin", "method", "headers", "message"),
    [
        (b"http://localhost:3000", b"PUT", b"", "preflight from http://localhost:3000: method 'PUT' is not allowed"),
        (b"http://localhost:3000", b"GET", b"impersonate-user", "request header 'impersonate-user' is not allowed"),
        (b"http://evil.example", b"GET", b"", "a page from http://evil.example is not allowed to use kproxy across"),
        (b"null", b"GET", b"", "a page with Origin 'null' is not allowed to use kproxy across origins; an opaque"),
    ],
)
async def test_preflights_outside_the_rules_get_no_grant(
    tmp_path: Path, origin: bytes, method: bytes, headers: bytes, message: str
) -> None:
    p, relay = pipeline(tmp_path, reject_methods="^PUT$")
    answer, _ = await send(p, preflight(origin, method, headers))
    assert answer.status == 403 and message in json.loads(answer.body)["message"]
    assert not any(name.startswith("Access-Control") for name, _ in answer.headers)
    assert ("Vary", "Origin") in answer.headers
    assert relay.forwarded == []


async def test_without_origin_nothing_changes(tmp_path: Path) -> None:
    p, relay = pipeline(tmp_path)
    answer, request = await send(p, b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: localhost\r\n")
    assert answer.status == 200 and request.added_lines == b""
    # An OPTIONS with Access-Control-Request-Method but no Origin is no preflight: forwarded.
    head = b"OPTIONS /api HTTP/1.1\r\nHost: localhost\r\nAccess-Control-Request-Method: GET\r\n"
    assert (await send(p, head))[0].status == 200 and relay.forwarded[-1] == ("OPTIONS", b"/api")


async def test_refusals_and_refused_preflights_are_counted_as_origin(tmp_path: Path) -> None:
    from kproxy.metrics import tally

    p, _ = pipeline(tmp_path)
    before = tally.rejected["origin"]
    head = b"POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: localhost:8001\r\nOrigin: http://evil.example\r\n"
    assert (await send(p, head))[0].status == 403
    assert (await send(p, preflight(b"http://evil.example", b"GET")))[0].status == 403
    assert (await send(p, preflight(ALLOWED.encode(), b"GET")))[0].status == 204  # granted: not counted
    assert tally.rejected["origin"] - before == 2
