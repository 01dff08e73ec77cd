"""kproxy.proxy.access_log: the JSON and text lines, and where they go (no sockets)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from kproxy.proxy import access_log
from kproxy.proxy.access_log import AccessLog, duration_ms, json_line, text_message
from kproxy.proxy.observe import Record
from tests.proxy.fakes import FakeClient

NOW = 1_765_000_000.25  # 2025-12-06T05:46:40.250Z


def record(head: bytes = b"GET /api/v1/pods?limit=1&token=x HTTP/1.1\r\nHost: h\r\n", **fields: object) -> Record:
    rec = Record(FakeClient().request(head), "10.0.0.9")
    for name, value in fields.items():
        setattr(rec, name, value)
    return rec


def test_a_json_line_has_every_field_in_order() -> None:
    rec = record(verb="list", status=200, bytes_out=12, audit_id=b"a-b-c")
    line = json_line(rec, NOW, 0.0015)
    assert line.endswith("}\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "time": "2025-12-06T05:46:40.248Z",  # when it arrived: now minus the duration
        "client": "10.0.0.9",
        "method": "GET",
        "path": "/api/v1/pods",
        "verb": "list",
        "status": 200,
        "bytes_in": 0,
        "bytes_out": 12,
        "duration_ms": 1.5,
        "audit_id": "a-b-c",
        "user": None,
        "target": None,
        "termination": "complete",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.000"),
        (0.0000004, "0.000"),
        (0.0007349, "0.734"),  # cut, not rounded: the fast path's table has 734 microseconds here
        (0.0019996, "1.999"),
        (2.5000005, "2500.000"),
        (61.25, "61250.000"),
    ],
)
def test_a_duration_is_cut_to_the_microsecond(seconds: float, text: str) -> None:
    assert duration_ms(seconds) == text
    assert f'"duration_ms":{text},' in json_line(record(), NOW, seconds)


@pytest.mark.parametrize(
    ("head", "path"),
    [
        (b"GET /a%2Fb?x=1 HTTP/1.1\r\n", "/a%2Fb"),  # as sent, without the query
        (b"GET http://localhost:8001/api/v1?token=t HTTP/1.1\r\n", "/api/v1"),  # absolute form
        (b'GET /"\\\x7f HTTP/1.1\r\n', '/"\\\x7f'),  # escaped as JSON wants it
    ],
)
def test_paths(head: bytes, path: str) -> None:
    entry = json.loads(json_line(record(head), NOW, 0.0))
    assert entry["path"] == path and "token" not in json_line(record(head), NOW, 0.0)


def test_what_does_not_apply_is_null() -> None:
    rec = record(client=None, status=None, termination="client_gone")
    entry = json.loads(json_line(rec, NOW, 0.0))
    assert (entry["client"], entry["status"], entry["audit_id"], entry["user"]) == (None, None, None, None)
    assert entry["verb"] == "list" and entry["termination"] == "client_gone"  # the verb worked out at the end


def test_the_text_message_is_what_v2_always_wrote() -> None:
    rec = record(b"GET /api/v1/namespaces/d/services/s:80/proxy/a%20b?token=x HTTP/1.1\r\n")
    rec.status, rec.target = 200, "service d/s:80"
    assert text_message(rec) == "10.0.0.9 GET /api/v1/namespaces/d/services/s:80/proxy/a b 200 (service d/s:80)"
    rec.status, rec.client, rec.target = None, None, None
    assert text_message(rec) == "- GET /api/v1/namespaces/d/services/s:80/proxy/a b -"


def test_a_file_gets_one_line_per_record_and_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog.open("json", str(path))
    log.write(record(status=200), NOW, 0.001)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.rename(tmp_path / "old.log")
    log.reopen()
    log.write(record(status=201), NOW, 0.001)
    log.close()
    log.write(record(status=202), NOW, 0.001)  # after close: dropped, no error
    assert [json.loads(x)["status"] for x in (tmp_path / "old.log").read_text().splitlines()] == [200]
    assert [json.loads(x)["status"] for x in path.read_text().splitlines()] == [201]


def test_the_text_format_writes_klog_lines(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog.open("text", str(path))
    log.write(record(status=200), NOW, 0.0)
    log.close()
    (line,) = path.read_text().splitlines()
    assert line.startswith("I1206 ") and line.endswith(f"{os.getpid():7d} kproxy] 10.0.0.9 GET /api/v1/pods 200")


def test_an_unwritable_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        AccessLog.open("json", str(tmp_path / "no" / "such" / "dir"))


def test_a_failing_write_is_said_once_not_raised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access_log, "_complained_at", 0.0)
    read, write = os.pipe()
    os.close(read)  # writing now fails with EPIPE
    log = AccessLog("json", write, "the pipe")
    with caplog.at_level(logging.ERROR, logger="kproxy"):
        for _ in range(3):
            log.write(record(status=200), NOW, 0.0)
    os.close(write)
    assert len([r for r in caplog.records if "cannot write the access log to the pipe" in r.getMessage()]) == 1


def test_to_the_logger_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kproxy"):
        AccessLog.to_logger().write(record(status=200), NOW, 0.0)
    assert [r.getMessage() for r in caplog.records] == ["10.0.0.9 GET /api/v1/pods 200"]
