"""kproxy.server.admin: the three endpoints, methods, unknown paths and the client gate
(the handler without sockets; tests/integration/test_observability.py over HTTP)."""

from __future__ import annotations

import pytest

from kproxy.config.observability import Observability
from kproxy.errors import ConfigError
from kproxy.http import Response
from kproxy.policy.ranges import AuthorizedRanges
from kproxy.proxy.access import ClientGate
from kproxy.server.admin import AdminServer
from tests.proxy.fakes import FakeClient


class StubReadiness:
    def __init__(self, ready: bool, reason: str) -> None:
        self.answer = (ready, reason)

    def state(self) -> tuple[bool, str]:
        return self.answer


def admin(ready: bool = True, reason: str = "ok", ranges: str = "") -> AdminServer:
    return AdminServer(
        Observability(metrics_host="127.0.0.1", metrics_port=0),
        ClientGate(AuthorizedRanges.parse(ranges)),
        StubReadiness(ready, reason),  # type: ignore[arg-type]
        lambda: b"# metrics\n",
        "text/plain; version=0.0.4; charset=utf-8",
    )


async def ask(server: AdminServer, head: bytes, peer: tuple[str, int] = ("127.0.0.1", 5000)) -> Response:
    answer = await server._handle(FakeClient(peer).request(head + b"Host: x\r\n"))
    assert isinstance(answer, Response)
    return answer


@pytest.mark.parametrize(
    ("head", "status", "body"),
    [
        (b"GET /livez HTTP/1.1\r\n", 200, b"ok\n"),
        (b"HEAD /livez HTTP/1.1\r\n", 200, b"ok\n"),
        (b"GET /readyz?verbose HTTP/1.1\r\n", 200, b"ok\n"),
        (b"GET /metrics HTTP/1.1\r\n", 200, b"# metrics\n"),
        (b"POST /metrics HTTP/1.1\r\n", 405, b"405 method not allowed\n"),
        (b"GET /api/v1/pods HTTP/1.1\r\n", 404, b"404 page not found\n"),
        (b"GET /metrics/ HTTP/1.1\r\n", 404, b"404 page not found\n"),
    ],
)
async def test_endpoints(head: bytes, status: int, body: bytes) -> None:
    answer = await ask(admin(), head)
    assert (answer.status, answer.body) == (status, body)


async def test_not_ready_says_why_in_one_line() -> None:
    answer = await ask(admin(False, "cannot reach the API server: connection refused"), b"GET /readyz HTTP/1.1\r\n")
    assert (answer.status, answer.body) == (503, b"cannot reach the API server: connection refused\n")
    assert ("Cache-Control", "no-cache, private") in answer.headers


async def test_the_authorized_ranges_apply() -> None:
    server = admin(ranges="10.0.0.0/8")
    answer = await ask(server, b"GET /metrics HTTP/1.1\r\n", ("192.168.1.9", 5000))
    assert (answer.status, answer.body) == (
        403,
        b"403 Forbidden: client 192.168.1.9 is not in the authorized IP ranges\n",
    )
    assert (await ask(server, b"GET /metrics HTTP/1.1\r\n", ("10.1.2.3", 5000))).status == 200


async def test_an_address_in_use_names_the_flag() -> None:
    first = admin()
    await first.start()
    try:
        port = int(first.address.rsplit(":", 1)[1])
        second = AdminServer(
            Observability(metrics_host="127.0.0.1", metrics_port=port),
            ClientGate(AuthorizedRanges.parse("")),
            StubReadiness(True, "ok"),  # type: ignore[arg-type]
            lambda: b"",
            "text/plain",
        )
        with pytest.raises(
            ConfigError, match=rf"^--metrics-address 127.0.0.1:{port}: listen tcp .*address already in use"
        ):
            await second.start()
    finally:
        await first.close()
