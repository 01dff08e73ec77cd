"""kproxy.proxy.pipeline without sockets: the order in which a request meets the checks,
and the answer each gives. A recording relay stands in for the upstream side."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kproxy import Flags, Options
from kproxy.http import Request, Response
from kproxy.policy.ranges import AuthorizedRanges
from kproxy.proxy import pipeline as pipeline_module
from kproxy.proxy.access import ClientGate
from kproxy.proxy.pipeline import Pipeline
from kproxy.proxy.static import StaticFiles
from tests.proxy.fakes import FakeClient


@dataclass
class RecordingRelay:
    forwarded: list[tuple[str, bytes]] = field(default_factory=list)
    impersonated: list[bytes | None] = field(default_factory=list)
    long_running: list[bytes] = field(default_factory=list)

    async def forward(
        self, request: Request, target: bytes, impersonate: bytes | None = None, long_running: bool = False
    ) -> Response:
        self.forwarded.append((request.method, target))
        self.impersonated.append(impersonate)
        if long_running:
            self.long_running.append(target)
        return Response(body=b"upstream")


def build(tmp_path: Path, ranges: str = "", **flags: object) -> tuple[Pipeline, RecordingRelay]:
    www = tmp_path / "www"
    www.mkdir(exist_ok=True)
    (www / "a.txt").write_text("static")
    options = Options.from_flags(Flags(server="https://api:6443", token="t", www=str(www), **flags))  # type: ignore[arg-type]
    relay = RecordingRelay()
    gate = ClientGate(AuthorizedRanges.parse(ranges))
    return Pipeline(options, gate, relay, StaticFiles(options.www)), relay  # type: ignore[arg-type]


async def ask(p: Pipeline, head: bytes, peer: object = ("127.0.0.1", 5000)) -> Response:
    answer = await p.handle(FakeClient(peer).request(head))
    assert isinstance(answer, Response), answer
    return answer


@pytest.mark.parametrize(
    ("head", "status", "body"),
    [
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: localhost\r\n", 200, b"upstream"),
        (b"GET /static/ HTTP/1.1\r\nHost: localhost\r\n", 200, None),  # a listing
        (b"GET /static HTTP/1.1\r\nHost: localhost\r\n", 301, None),  # ServeMux prefix redirect
        (b"GET /api//v1 HTTP/1.1\r\nHost: localhost\r\n", 301, None),  # path cleaning
        (b"GET /api/v1/%zz HTTP/1.1\r\nHost: localhost\r\n", 400, b"400 Bad Request: invalid URL escape\n"),
        (b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n", 200, b""),
        (b"GET /api/v1/pods HTTP/1.1\r\nHost: evil.example\r\n", 403, b"Forbidden\n"),
        (b"GET /static/a.txt HTTP/1.1\r\nHost: evil.example\r\n", 403, b"Forbidden\n"),  # kubectl lets this by
        (b"POST /api/v1/namespaces/d/pods/x/exec HTTP/1.1\r\nHost: localhost\r\n", 403, b"Forbidden\n"),
        # Absolute form: Go takes the host from the target, not the header.
        (b"GET http://localhost/api HTTP/1.1\r\nHost: evil.example\r\n", 200, b"upstream"),
    ],
)
async def test_routes_and_filters(tmp_path: Path, head: bytes, status: int, body: bytes | None) -> None:
    p, _ = build(tmp_path)
    answer = await ask(p, head)
    assert answer.status == status
    if body is not None:
        assert answer.body == body


async def test_a_filter_refusal_names_the_rule(tmp_path: Path) -> None:
    p, relay = build(tmp_path)
    answer = await ask(p, b"GET /api/v1/pods HTTP/1.1\r\nHost: evil.example\r\n")
    assert dict(answer.headers)["X-Kproxy-Rejected-By"].startswith("accept-hosts")
    assert relay.forwarded == []


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (b"", "missing required Host header"),
        (b"Host: a\r\nHost: b\r\n", "too many Host headers"),
        (b"Host: a b\r\n", "malformed Host header"),
    ],
)
async def test_what_gos_server_refuses_is_answered_in_its_words_and_closes(
    tmp_path: Path, headers: bytes, message: str
) -> None:
    p, relay = build(tmp_path)
    answer = await ask(p, b"GET /api HTTP/1.1\r\n" + headers)
    assert (answer.status, answer.close) == (400, True)
    assert answer.body.decode().startswith(f"400 Bad Request: {message}")
    assert relay.forwarded == []


async def test_a_malformed_service_proxy_url_is_a_400_status_naming_the_part(tmp_path: Path) -> None:
    p, relay = build(tmp_path)
    answer = await ask(p, b"GET /api/v1/namespaces/Bad_NS/services/web/proxy/ HTTP/1.1\r\nHost: localhost\r\n")
    status = json.loads(answer.body)
    assert (answer.status, status["kind"], status["code"]) == (400, "Status", 400)
    assert "Bad_NS" in status["message"] and relay.forwarded == []


async def test_a_verdict_to_forward_is_remembered_and_the_query_kept(tmp_path: Path) -> None:
    p, relay = build(tmp_path)
    head = b"GET /api/v1/pods?limit=1&x=%20 HTTP/1.1\r\nHost: localhost\r\n"
    await ask(p, head)
    assert p._cache.get("GET", "/api/v1/pods?limit=1&x=%20", "localhost") is not None
    await ask(p, head)
    assert relay.forwarded == [("GET", b"/api/v1/pods?limit=1&x=%20")] * 2


async def test_clients_outside_the_ranges_are_refused_before_anything_else(tmp_path: Path) -> None:
    p, relay = build(tmp_path, ranges="10.0.0.0/8")
    answer = await ask(p, b"GET /static/a.txt HTTP/1.1\r\nHost: localhost\r\n", peer=("192.0.2.1", 1))
    assert answer.status == 403 and "192.0.2.1 is not in the authorized IP ranges" in answer.body.decode()
    assert (await ask(p, b"GET /api HTTP/1.1\r\nHost: localhost\r\n", peer=("10.1.1.1", 1))).status == 200
    assert p.fast is not None and not p.fast(FakeClient().request(b"GET /api HTTP/1.1\r\nHost: localhost\r\n"))


async def test_upgrades_go_to_the_splice_and_its_errors_close_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kproxy.errors import UpstreamError

    async def refuse(relay: object, request: Request, target: bytes, impersonate: bytes | None) -> Response:
        raise UpstreamError("invalid upgrade response: status code 200")

    monkeypatch.setattr(pipeline_module, "upgrade", refuse)
    p, _ = build(tmp_path, reject_paths="")
    head = b"POST /api/v1/namespaces/d/pods/x/exec HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
    answer = await ask(p, head)
    assert (answer.status, answer.close) == (502, True)
    assert json.loads(answer.body)["message"] == "invalid upgrade response: status code 200"


async def test_a_bug_of_ours_is_a_500_status_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p, relay = build(tmp_path)

    async def broken(
        request: Request, target: bytes, impersonate: bytes | None = None, long_running: bool = False
    ) -> Response:
        raise KeyError("oops")

    relay.forward = broken  # type: ignore[method-assign]
    answer = await ask(p, b"GET /api HTTP/1.1\r\nHost: localhost\r\n")
    assert answer.status == 500 and json.loads(answer.body)["message"] == "kproxy internal error; see its log"
    assert any("internal error serving GET /api" in r.getMessage() for r in caplog.records)
