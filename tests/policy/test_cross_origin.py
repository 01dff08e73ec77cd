"""kproxy.policy.cross_origin: origins, the guard's verdicts, the allow-list's grammar and
preflight grants, as tables (docs/browsers.md §4)."""

from __future__ import annotations

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.cross_origin import (
    CORS_METHODS,
    CorsPolicy,
    Kind,
    grant_lines,
    own_origin,
    parse_origin,
    refused,
    request_origin,
)


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("http://localhost:3000", "http://localhost:3000"),
        ("HTTP://LocalHost:3000", "http://localhost:3000"),
        ("http://example.com:80", "http://example.com"),  # the default port is not part of it
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:80", "https://example.com:80"),
        ("http://[::1]:8001", "http://[::1]:8001"),
        ("http://127.0.0.1:08001", "http://127.0.0.1:8001"),
        ("chrome-extension://abcdef", "chrome-extension://abcdef"),
        ("null", None),
        ("", None),
        ("http://a/b", None),
        ("http://a/", None),
        ("http://a:99999", None),
        ("http://a:", None),
        ("http://user@a", None),
        ("http://a, http://b", None),  # two Origin headers, joined
        (" http://a", None),
        ("localhost:8001", None),
    ],
)
def test_parse_origin(value: str, normal: str | None) -> None:
    assert parse_origin(value) == normal


@pytest.mark.parametrize(
    ("scheme", "host", "own"),
    [
        ("http", "localhost:8001", "http://localhost:8001"),
        ("http", "127.0.0.1:80", "http://127.0.0.1"),
        ("https", "Example.COM:443", "https://example.com"),
        ("http", "[::1]:8001", "http://[::1]:8001"),
        ("http", "", None),  # HTTP/1.0 without Host
        ("http", "localhost:abc", None),
    ],
)
def test_own_origin(scheme: str, host: str, own: str | None) -> None:
    assert own_origin(scheme, host) == own


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ([(b"Host", b"x")], None),
        ([(b"Origin", b"http://a")], "http://a"),
        ([(b"origin", b"null")], "null"),
        ([(b"Origin", b"http://a"), (b"ORIGIN", b"http://b")], "http://a, http://b"),
    ],
)
def test_request_origin(headers: list[tuple[bytes, bytes]], origin: str | None) -> None:
    assert request_origin(headers) == origin


POLICY = CorsPolicy.parse(r"http://localhost:3000,https://[a-z0-9-]+\.example\.com")
OWN = "http://127.0.0.1:8001"


@pytest.mark.parametrize(
    ("origin", "kind"),
    [
        ("http://127.0.0.1:8001", "own"),
        ("HTTP://127.0.0.1:8001", "own"),
        ("http://localhost:3000", "allowed"),
        ("http://LOCALHOST:3000", "allowed"),
        ("http://localhost:3001", "foreign"),
        ("https://localhost:3000", "foreign"),
        ("https://dash.example.com", "allowed"),
        ("https://dash.example.com:443", "allowed"),
        ("https://dash.example.com:8443", "foreign"),  # anchored: the port is not matched
        ("https://dash.example.com.evil.net", "foreign"),
        ("https://evil.net/.example.com", "foreign"),  # not an origin
        ("https://a.b.example.com", "foreign"),
        ("http://dash.example.com", "foreign"),
        ("null", "foreign"),
        ("http://localhost:3000, http://evil", "foreign"),
        ("http://127.0.0.1:8002", "foreign"),
        ("https://127.0.0.1:8001", "foreign"),  # another scheme is another origin
    ],
)
def test_kinds(origin: str, kind: Kind) -> None:
    assert POLICY.kind(origin, OWN) == kind


def test_an_exact_entry_is_literal() -> None:
    # Dots in an exact origin match only dots (as a pattern, "." would match anything).
    policy = CorsPolicy.parse("https://app.example.com")
    assert policy.allows("https://app.example.com")
    assert not policy.allows("https://appxexample.com")


@pytest.mark.parametrize(
    ("kind", "method", "upgrade", "refused_"),
    [
        ("own", "POST", False, False),
        ("own", "GET", True, False),
        ("allowed", "DELETE", False, False),
        ("allowed", "GET", True, False),
        ("foreign", "GET", False, False),
        ("foreign", "HEAD", False, False),
        ("foreign", "OPTIONS", False, False),
        ("foreign", "POST", False, True),
        ("foreign", "PUT", False, True),
        ("foreign", "PATCH", False, True),
        ("foreign", "DELETE", False, True),
        ("foreign", "get", False, True),  # methods are case-sensitive
        ("foreign", "PROPFIND", False, True),
        ("foreign", "GET", True, True),  # a WebSocket handshake
        ("foreign", "POST", True, True),  # SPDY
        ("foreign", "OPTIONS", True, True),
    ],
)
def test_the_guard(kind: Kind, method: str, upgrade: bool, refused_: bool) -> None:
    assert refused(kind, method, upgrade) is refused_


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "--cors-allowed-origins: '*' is not an origin: kproxy grants named origins only"),
        ("null", "--cors-allowed-origins: 'null' cannot be allowed: any page can send Origin: null"),
        (
            "http://a/b",
            "--cors-allowed-origins: 'http://a/b' is not an origin: write scheme://host[:port], with no path,"
            " query or user; did you mean 'http://a'?",
        ),
        ("http://a.com/", "did you mean 'http://a.com'?"),
        ("http://u:p@a.com", "did you mean 'http://a.com'?"),
        ("localhost:3000", "--cors-allowed-origins: 'localhost:3000' is not an origin"),
        ("http://a, http://b", "' http://b' is not an origin: entries are separated by commas without spaces"),
        ("http://a,", "--cors-allowed-origins: 'http://a,' contains an empty pattern"),
        ("https://(a", "--cors-allowed-origins: invalid regular expression 'https://(a': missing )"),
        ("https://a\\C", "invalid escape sequence"),
        (".*", "--cors-allowed-origins: the pattern '.*' matches the origin 'null'"),
        ("(null|http://a)", "matches the origin 'null'"),
    ],
)
def test_bad_entries_name_the_flag_and_the_entry(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CorsPolicy.parse(value)
    assert message in str(caught.value)


def test_empty_means_no_grants() -> None:
    policy = CorsPolicy.parse("")
    assert not policy.enabled
    assert policy.kind("http://localhost:3000", OWN) == "foreign"
    assert policy.kind(OWN, OWN) == "own"


@pytest.mark.parametrize(
    ("method", "headers", "granted"),
    [
        ("GET", "", True),
        ("DELETE", "", True),
        ("PATCH", "content-type", True),
        ("POST", "content-type,authorization,x-requested-with", True),
        ("PUT", "Content-Type, Accept", True),
        ("OPTIONS", "", False),  # not a method a preflight asks for
        ("patch", "", False),  # browsers upper-case only the standard six, never PATCH
        ("PROPFIND", "", False),
        ("GET", "impersonate-user", False),
        ("GET", "content-type,x-evil", False),
        ("GET", "bad header", False),
    ],
)
def test_preflight_grants(method: str, headers: str, granted: bool) -> None:
    verdict = POLICY.preflight("http://localhost:3000", method, headers)
    assert verdict.granted is granted
    if granted:
        got = dict(verdict.headers)
        assert got["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert got["Access-Control-Allow-Methods"] == "GET, HEAD, POST, PUT, PATCH, DELETE"
        assert got["Access-Control-Max-Age"] == "600"
        assert "Origin" in got["Vary"]
        if headers:
            assert got["Access-Control-Allow-Headers"] == ", ".join(h.strip() for h in headers.split(","))
        else:
            assert "Access-Control-Allow-Headers" not in got
    else:
        assert verdict.headers == ()
        assert "is not allowed across origins" in verdict.reason


def test_rejected_methods_are_not_granted() -> None:
    # --reject-methods=POST,PUT,PATCH leaves GET, HEAD and DELETE.
    policy = CorsPolicy.parse("http://localhost:3000", ["GET", "HEAD", "DELETE", "OPTIONS"])
    assert policy.methods == "GET, HEAD, DELETE"
    assert policy.preflight("http://localhost:3000", "DELETE", "").granted
    refusal = policy.preflight("http://localhost:3000", "POST", "")
    assert not refusal.granted
    assert refusal.reason == "method 'POST' is not allowed across origins (allowed: GET, HEAD, DELETE)"
    assert CORS_METHODS == ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def test_grant_lines() -> None:
    lines = grant_lines("http://localhost:3000").decode()
    assert lines.startswith("Access-Control-Allow-Origin: http://localhost:3000\r\nVary: Origin\r\n")
    assert "Access-Control-Expose-Headers: Audit-Id, Warning, Content-Type" in lines
    assert lines.endswith("\r\n") and "*" not in lines
