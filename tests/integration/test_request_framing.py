"""What the real kproxy process accepts and refuses at the HTTP level, as Go's server
does and stricter where a front proxy must never guess: transfer codings (501),
versions (505), the request line, the framing headers (400 and the connection
closed), and methods — any token, forwarded as sent, filtered as sent. The upstream
records what reaches it (nothing, for every refusal)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import KproxyProcess, StartKproxy
from tests.integration.recording_upstream import RecordingUpstream
from tests.integration.test_forwarding import curl


@pytest.fixture
async def kp(recorder: RecordingUpstream, start_kproxy: StartKproxy) -> KproxyProcess:
    return await start_kproxy("--port", "0", "--server", recorder.url)


async def exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """(what kproxy answers, whether it closed the connection after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = b""
    closed = False
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 15 if not answer else 2)
            if not chunk:
                closed = True
                break
            answer += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    writer.close()
    return answer, closed


def head(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


REFUSED = {
    # (request, status line, body)
    "gzip-chunked": (
        head("POST /api/v1/x HTTP/1.1\nHost: localhost\nTransfer-Encoding: gzip, chunked\n\n") + b"0\r\n\r\n",
        b"HTTP/1.1 501 Not Implemented",
        b"501 Not Implemented: unsupported transfer encoding 'gzip, chunked'",
    ),
    "gzip": (
        head("POST /api/v1/x HTTP/1.1\nHost: localhost\nTransfer-Encoding: gzip\n\n"),
        b"HTTP/1.1 501 Not Implemented",
        b"501 Not Implemented: unsupported transfer encoding 'gzip'",
    ),
    "unknown-coding": (
        head("POST /api/v1/x HTTP/1.1\nHost: localhost\nTransfer-Encoding: x-custom, chunked\n\n") + b"0\r\n\r\n",
        b"HTTP/1.1 501 Not Implemented",
        b"501 Not Implemented: unsupported transfer encoding 'x-custom, chunked'",
    ),
    "http-2.0": (
        head("GET /api HTTP/2.0\nHost: localhost\n\n"),
        b"HTTP/1.1 505 HTTP Version Not Supported",
        b"505 HTTP Version Not Supported: unsupported protocol version 'HTTP/2.0'",
    ),
    "http-0.9": (
        head("GET /api HTTP/0.9\nHost: localhost\n\n"),
        b"HTTP/1.1 505 HTTP Version Not Supported",
        b"505 HTTP Version Not Supported: unsupported protocol version 'HTTP/0.9'",
    ),
    "http-1.2": (
        head("GET /api HTTP/1.2\nHost: localhost\n\n"),
        b"HTTP/1.1 505 HTTP Version Not Supported",
        b"505 HTTP Version Not Supported: unsupported protocol version",
    ),
    "h2-preface": (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"HTTP/1.1 505 HTTP Version Not Supported",
        b"505 HTTP Version Not Supported: unsupported protocol version",
    ),
    "two-spaces-before-target": (
        head("GET  /api HTTP/1.1\nHost: localhost\n\n"),
        b"HTTP/1.1 400 Bad Request",
        b"400 Bad Request: malformed request line: one space between method, target and version",
    ),
    "two-spaces-after-target": (
        head("GET /api  HTTP/1.1\nHost: localhost\n\n"),
        b"HTTP/1.1 400 Bad Request",
        b"400 Bad Request: malformed request line: one space between method, target and version",
    ),
    "length-and-chunked": (
        head("POST /api HTTP/1.1\nHost: localhost\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"),
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    "two-equal-lengths": (
        head("POST /api HTTP/1.1\nHost: localhost\nContent-Length: 2\nContent-Length: 2\n\nok"),
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    "invalid-length": (
        head("POST /api HTTP/1.1\nHost: localhost\nContent-Length: 1x\n\n"),
        b"HTTP/1.1 400 Bad Request",
        None,
    ),
    "obs-fold": (head("GET /api HTTP/1.1\nHost: localhost\nX-A: a\n  folded\n\n"), b"HTTP/1.1 400 Bad Request", None),
    "bare-lf": (b"GET /api HTTP/1.1\nHost: localhost\n\n", b"HTTP/1.1 400 Bad Request", None),
    "nul-in-value": (head("GET /api HTTP/1.1\nHost: localhost\nX-A: a\x00b\n\n"), b"HTTP/1.1 400 Bad Request", None),
    "ctl-in-value": (head("GET /api HTTP/1.1\nHost: localhost\nX-A: a\x01b\n\n"), b"HTTP/1.1 400 Bad Request", None),
    "space-before-colon": (head("GET /api HTTP/1.1\nHost : localhost\n\n"), b"HTTP/1.1 400 Bad Request", None),
    "method-not-a-token": (
        head("G(T /api HTTP/1.1\nHost: localhost\n\n"),
        b"HTTP/1.1 400 Bad Request",
        b"400 Bad Request: invalid method 'G(T'",
    ),
}


@pytest.mark.parametrize(("request_bytes", "status", "body"), REFUSED.values(), ids=REFUSED.keys())
async def test_refused_requests_get_one_answer_and_nothing_is_forwarded(
    kp: KproxyProcess, recorder: RecordingUpstream, request_bytes: bytes, status: bytes, body: bytes | None
) -> None:
    # Behind a good request on the same connection: it is answered first, then the refusal.
    good = head("GET /api/v1/first HTTP/1.1\nHost: localhost\n\n")
    answer, closed = await exchange(kp.port, good + request_bytes)
    first, _, rest = answer.partition(b"HTTP/1.1 200 OK")[2].partition(b"HTTP/1.1 ")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    refusal = b"HTTP/1.1 " + rest
    assert refusal.startswith(status + b"\r\n") and closed, refusal
    assert b"Connection: close\r\n" in refusal
    if body is not None:
        assert refusal.endswith(b"\r\n\r\n" + body), refusal
    await recorder.settled()
    assert [s.target for s in recorder.seen] == ["/api/v1/first"]


@pytest.mark.parametrize("method", ["post", "POSTX", "Get", "mkcol", "X-Custom"])
async def test_any_token_method_is_forwarded_as_sent(
    kp: KproxyProcess, recorder: RecordingUpstream, method: str
) -> None:
    code, out, err = await curl("-X", method, "-d", "payload", f"{kp.url}/api/v1/namespaces/default/configmaps")
    assert code == 0, err
    assert f'"method": "{method}"' in out
    await recorder.settled()
    [seen] = recorder.seen
    assert (seen.method, seen.target, seen.body) == (method, "/api/v1/namespaces/default/configmaps", b"payload")


async def test_pipelined_unknown_methods_keep_their_order(kp: KproxyProcess, recorder: RecordingUpstream) -> None:
    data = (
        head("GET /api/v1/a HTTP/1.1\nHost: localhost\n\n")
        + head("post /api/v1/b HTTP/1.1\nHost: localhost\nContent-Length: 2\n\n")
        + b"hi"
        + head("PATCHX /api/v1/c HTTP/1.1\nHost: localhost\nConnection: close\n\n")
    )
    answer, closed = await exchange(kp.port, data)
    assert answer.count(b"HTTP/1.1 200 OK") == 3 and closed
    await recorder.settled()
    assert [(s.method, s.target, s.body) for s in recorder.seen] == [
        ("GET", "/api/v1/a", b""),
        ("post", "/api/v1/b", b"hi"),
        ("PATCHX", "/api/v1/c", b""),
    ]


async def test_reject_methods_sees_the_method_as_sent(recorder: RecordingUpstream, start_kproxy: StartKproxy) -> None:
    # kubectl's trap, kept: --reject-methods=POST does not match "post" (RE2 is
    # case-sensitive), but, unanchored, it does match "POSTX".
    kp = await start_kproxy("--port", "0", "--server", recorder.url, "--reject-methods=POST")
    url = f"{kp.url}/api/v1/namespaces/default/configmaps"
    results = {}
    for method in ("POST", "post", "POSTX"):
        code, out, _ = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "-d", "x", url)
        results[method] = out
    assert results == {"POST": "403", "post": "200", "POSTX": "403"}
    await recorder.settled()
    assert [s.method for s in recorder.seen] == ["post"]
