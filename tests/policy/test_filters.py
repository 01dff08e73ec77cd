"""kproxy.policy.filters: kubectl's accept/reject filter, as tables of input → verdict.

Rows marked §5.x are the observed kubectl 1.32 behaviour described in docs/kubectl-proxy.md.
"""

from __future__ import annotations

import pytest
import re2

from kproxy.errors import ConfigError
from kproxy.policy.filters import (
    DEFAULT_ACCEPT_HOSTS,
    DEFAULT_ACCEPT_PATHS,
    DEFAULT_REJECT_METHODS,
    DEFAULT_REJECT_PATHS,
    RequestFilter,
    Verdict,
    host_candidates,
    split_patterns,
)

DEFAULTS = {
    "accept_paths": DEFAULT_ACCEPT_PATHS,
    "reject_paths": DEFAULT_REJECT_PATHS,
    "accept_hosts": DEFAULT_ACCEPT_HOSTS,
    "reject_methods": DEFAULT_REJECT_METHODS,
}


def make(**overrides: str) -> RequestFilter:
    return RequestFilter.compile(**{**DEFAULTS, **overrides})


DEFAULT = make()
EXEC = "reject-paths ^/api/.*/pods/.*/exec"
ATTACH = "reject-paths ^/api/.*/pods/.*/attach"


def test_defaults_are_kubectls() -> None:
    assert DEFAULT_ACCEPT_PATHS == "^.*"
    assert DEFAULT_REJECT_PATHS == "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach"
    assert DEFAULT_ACCEPT_HOSTS == "^localhost$,^127\\.0\\.0\\.1$,^\\[::1\\]$"
    assert DEFAULT_REJECT_METHODS == "^$"


# §5.6, first table: the default rules against paths (Host: localhost).
@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", "/api/v1/namespaces/default/pods/x/exec", EXEC),
        ("POST", "/api/v1/namespaces/default/pods/x/exec", EXEC),
        ("GET", "/api/v1/namespaces/default/pods/x/attach", ATTACH),
        ("GET", "/api/v1/namespaces/default/pods/x/execfoo", EXEC),  # no $
        ("GET", "/api/v1/namespaces/default/pods/x/exec/", EXEC),
        ("GET", "/api/v1/namespaces/default/services/s/proxy/pods/y/exec", EXEC),
        ("GET", "/api/v1/nodes/n/proxy/pods/x/exec", EXEC),
        ("GET", "/api/v1/namespaces/default/pods/x/../exec", EXEC),  # decoded %2e%2e
        ("GET", "/api/v1/namespaces/default/pods/exec", None),  # a pod named "exec"
        ("GET", "/api/v1/namespaces/default/pods/attachfoo", None),
        ("GET", "/api/v1/namespaces/default/pods/execfoo", None),
        ("GET", "/api/v1/namespaces/default/pods/x/portforward", None),
        ("GET", "/apis/apps/v1/namespaces/default/pods/x/exec", None),
        ("GET", "/api/v1/namespaces/default/pods/x/EXEC", None),
        ("GET", "", None),
        ("GET", "/", None),
        ("GET", "/ui", None),
        ("GET", "/api/v1/pods", None),
        ("POST", "/api/v1/pods", None),
        ("PUT", "/api/v1/namespaces/default/pods/x", None),
        ("PATCH", "/api/v1/namespaces/default/pods/x", None),
        ("DELETE", "/api/v1/namespaces/default/pods/x", None),
        ("FOOBAR", "/api/v1/pods", None),
    ],
)
def test_default_paths(method: str, path: str, rule: str | None) -> None:
    assert DEFAULT.verdict(method, path, "localhost") == Verdict(rule is None, rule)


# §5.6, second table, plus the kproxy IPv6 improvement (kubernetes#77496).
@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:8001", True),
        ("127.0.0.1", True),
        ("127.0.0.1:8001", True),
        ("[::1]", True),
        ("localhost:abc", True),  # the port is not checked
        ("localhost:", True),
        ("[::1]:8001", True),  # kubectl: 403 (bug); kproxy also tries "[::1]"
        ("::1", True),  # kubectl: 403; kproxy also tries "[::1]"
        ("LOCALHOST", False),
        ("localhost.", False),
        ("localhost.evil.com", False),
        ("127a0b0c1", False),
        ("127.0.0.2", False),
        ("127.0.0.2:8001", False),
        ("evil.com", False),
        ("evil.com:8001", False),
        ("", False),
        ("a:b:c", False),
        ("[::2]:8001", False),
        ("[localhost]:8001", True),  # Go's SplitHostPort removes the brackets
    ],
)
def test_default_hosts(host: str, allowed: bool) -> None:
    verdict = DEFAULT.verdict("GET", "/api/v1/pods", host)
    assert verdict.allowed is allowed
    assert DEFAULT.allows_host(host) is allowed


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("evil.com", "accept-hosts (no pattern matched host 'evil.com')"),
        ("evil.com:8001", "accept-hosts (no pattern matched host 'evil.com')"),
        ("", "accept-hosts (no pattern matched host '')"),
    ],
)
def test_host_rule_text(host: str, rule: str) -> None:
    assert DEFAULT.verdict("GET", "/api", host) == Verdict(False, rule)


# Go's net.SplitHostPort decides the first candidate; IPv6 literals get a second one.
@pytest.mark.parametrize(
    ("host", "candidates"),
    [
        ("localhost", ("localhost",)),
        ("localhost:8001", ("localhost",)),
        ("localhost:abc", ("localhost",)),
        ("127.0.0.1:8001", ("127.0.0.1",)),
        ("", ("",)),
        (":80", ("",)),
        ("a:b:c", ("a:b:c",)),  # too many colons: the whole value
        ("[::1]:8001", ("::1", "[::1]")),
        ("[::1]", ("[::1]", "::1")),  # missing port: the whole value
        ("::1", ("::1", "[::1]")),
        ("[fe80::1%eth0]:80", ("fe80::1%eth0", "[fe80::1%eth0]")),
        ("[::1]:80:90", ("[::1]:80:90",)),  # ']' not before the last ':'
        ("[::1]x:80", ("[::1]x:80",)),
        ("[::1:80", ("[::1:80",)),  # missing ']'
        ("a[b:80", ("a[b:80",)),  # unexpected '['
        ("a]b:80", ("a]b:80",)),  # unexpected ']'
        ("[a]]:80", ("[a]]:80",)),
        ("[evil.com]:80", ("evil.com",)),  # brackets removed, not IPv6: one candidate
        ("[evil.com]", ("[evil.com]",)),
        ("[::1", ("[::1",)),
    ],
)
def test_host_candidates(host: str, candidates: tuple[str, ...]) -> None:
    assert host_candidates(host) == candidates


def test_ipv6_user_pattern() -> None:
    # The workaround kubectl users need (^::1$) keeps working, and so does the bracketed form.
    f = make(accept_hosts="^::1$")
    for host in ("[::1]:8001", "::1", "[::1]"):
        assert f.verdict("GET", "/", host).allowed, host
    assert not f.verdict("GET", "/", "localhost").allowed


@pytest.mark.parametrize(
    ("value", "patterns"),
    [
        ("", ()),
        ("^.*", ("^.*",)),
        ("POST,PUT,PATCH", ("POST", "PUT", "PATCH")),
        ("^/a{1,3}$", ("^/a{1", "3}$")),  # every comma splits, even inside {m,n}
        (
            "^localhost$, ^127\\.0\\.0\\.1$",
            ("^localhost$", " ^127\\.0\\.0\\.1$"),
        ),  # no trim
        (" ", (" ",)),
    ],
)
def test_split_patterns(value: str, patterns: tuple[str, ...]) -> None:
    assert split_patterns("--accept-paths", value) == patterns


@pytest.mark.parametrize(
    ("flag", "value", "hint"),
    [
        ("--reject-methods", "POST,", "--reject-methods='POST'"),
        ("--accept-hosts", "^localhost$,", "--accept-hosts='^localhost$'"),
        ("--reject-paths", "a,,b", "--reject-paths='a,b'"),
        ("--accept-paths", ",x", "--accept-paths='x'"),
        ("--accept-paths", ",", "--accept-paths=''"),
    ],
)
def test_empty_element_is_config_error(flag: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_patterns(flag, value)
    message = str(info.value)
    assert flag in message
    assert repr(value) in message
    assert "matches everything" in message
    assert hint in message


def test_empty_element_rejected_by_compile() -> None:
    # kubectl: --reject-methods=POST, rejects every method; kproxy refuses the value.
    with pytest.raises(ConfigError, match="--reject-methods"):
        make(reject_methods="POST,")


@pytest.mark.parametrize(
    ("flag", "pattern", "reason"),
    [
        ("reject_paths", "[", "missing ]"),
        ("accept_paths", "(?!x)", "invalid perl operator"),  # lookahead
        ("accept_paths", "(?<=x)y", "invalid perl operator"),  # lookbehind
        ("accept_hosts", "(a)\\1", "invalid escape sequence"),  # backreference
        ("reject_methods", "\\Z", "invalid escape sequence"),
        ("reject_paths", "a{1001}", "invalid repetition size"),
        ("accept_paths", "\\C", "invalid escape sequence: \\C"),  # C++ RE2 only, not Go
        ("accept_paths", "x|\\Cy", "\\C"),
    ],
)
def test_invalid_regex_names_flag_and_pattern(flag: str, pattern: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(**{flag: pattern})
    message = str(info.value)
    assert "--" + flag.replace("_", "-") in message
    assert repr(pattern) in message
    assert reason in message


def test_invalid_regex_message_shape() -> None:
    with pytest.raises(ConfigError) as info:
        make(reject_paths="[")
    assert str(info.value).startswith("--reject-paths: invalid regular expression '[': missing ]: [")


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i)^/API",
        "^/[[:alpha:]]+$",
        "^/\\pL+$",
        "^/\\p{Greek}",
        "(?P<n>x)",
        "(?<n>x)",
        "\\Q\\C\\E",
    ],
)
def test_go_re2_syntax_accepted(pattern: str) -> None:
    make(accept_paths=pattern)


# §5.3: unanchored search, RE2 semantics, case-sensitive unless (?i).
@pytest.mark.parametrize(
    ("overrides", "method", "path", "rule"),
    [
        # ^/a{1,3}$ is two patterns, "^/a{1" and "3}$"
        (
            {"accept_paths": "^/a{1,3}$"},
            "GET",
            "/aaa",
            "accept-paths (no pattern matched)",
        ),
        ({"accept_paths": "^/a{1,3}$"}, "GET", "/x3}", None),
        ({"accept_paths": "^/a{1,3}$"}, "GET", "/a{1", None),
        # unanchored search
        (
            {"accept_paths": "/api/v1/namespaces/default"},
            "GET",
            "/foo/api/v1/namespaces/default",
            None,
        ),
        (
            {"accept_paths": "/api/v1/namespaces/default"},
            "GET",
            "/api/v1/namespaces/defaultx",
            None,
        ),
        (
            {"accept_paths": "^/api$"},
            "GET",
            "/api/",
            "accept-paths (no pattern matched)",
        ),
        ({"accept_paths": "(?i)^/API/"}, "GET", "/api/v1", None),
        ({"accept_paths": "^/[[:alpha:]]+$"}, "GET", "/pods", None),
        (
            {"accept_paths": "^/[[:alpha:]]+$"},
            "GET",
            "/pods1",
            "accept-paths (no pattern matched)",
        ),
        ({"accept_paths": "^/\\pL+$"}, "GET", "/καλημέρα", None),
        (
            {"accept_paths": "^/\\pL+$"},
            "GET",
            "/x-y",
            "accept-paths (no pattern matched)",
        ),
        # $ is the end of the text, not before a final newline (unlike Python's re)
        (
            {"accept_paths": "^/api$"},
            "GET",
            "/api\n",
            "accept-paths (no pattern matched)",
        ),
        # methods: case preserved, unanchored
        ({"reject_methods": "POST,PUT,PATCH"}, "POST", "/api", "reject-methods POST"),
        ({"reject_methods": "POST,PUT,PATCH"}, "PATCH", "/api", "reject-methods PATCH"),
        ({"reject_methods": "POST,PUT,PATCH"}, "post", "/api", None),
        ({"reject_methods": "POST,PUT,PATCH"}, "POSTX", "/api", "reject-methods POST"),
        ({"reject_methods": "POST,PUT,PATCH"}, "GET", "/api", None),
        ({"reject_methods": "^POST$"}, "POSTX", "/api", None),
        ({"reject_methods": "^POST$"}, "POST", "/api", "reject-methods ^POST$"),
        ({"reject_methods": "(?i)^post$"}, "post", "/api", "reject-methods (?i)^post$"),
        ({"reject_methods": "^$"}, "", "/api", "reject-methods ^$"),
        # the first matching pattern, in flag order, is the one reported
        ({"reject_paths": "x,^/a,a"}, "GET", "/a", "reject-paths ^/a"),
        # reject-paths wins over accept-paths, whatever accept-paths says
        ({"accept_paths": "^/api/"}, "GET", "/api/v1/namespaces/d/pods/p/exec", EXEC),
    ],
)
def test_patterns(overrides: dict[str, str], method: str, path: str, rule: str | None) -> None:
    assert make(**overrides).verdict(method, path, "localhost") == Verdict(rule is None, rule)


# §5.3: a leading space is part of the pattern; " ^127…" wants a space before the start
# of the text, so it never matches anything.
@pytest.mark.parametrize(
    ("host", "allowed"),
    [("localhost", True), ("127.0.0.1", False), (" 127.0.0.1", False)],
)
def test_leading_space_pattern(host: str, allowed: bool) -> None:
    f = make(accept_hosts="^localhost$, ^127\\.0\\.0\\.1$")
    assert f.verdict("GET", "/", host).allowed is allowed


# §5.3/§5.4: an empty value is an empty list.
@pytest.mark.parametrize(
    ("overrides", "method", "path", "host", "rule"),
    [
        (
            {"accept_paths": ""},
            "GET",
            "/api",
            "localhost",
            "accept-paths (no pattern matched)",
        ),
        (
            {"accept_paths": ""},
            "GET",
            "",
            "localhost",
            "accept-paths (no pattern matched)",
        ),
        (
            {"accept_hosts": ""},
            "GET",
            "/api",
            "localhost",
            "accept-hosts (no pattern matched host 'localhost')",
        ),
        (
            {"reject_paths": ""},
            "GET",
            "/api/v1/namespaces/d/pods/p/exec",
            "localhost",
            None,
        ),
        ({"reject_methods": ""}, "", "/api", "localhost", None),
        (
            {"reject_paths": "", "reject_methods": ""},
            "DELETE",
            "/api/v1/namespaces/d/pods/p/attach",
            "localhost",
            None,
        ),
        ({"accept_hosts": ".*"}, "GET", "/api", "evil.com", None),
        ({"accept_hosts": "^.*"}, "GET", "/api", "", None),
    ],
)
def test_empty_lists(overrides: dict[str, str], method: str, path: str, host: str, rule: str | None) -> None:
    assert make(**overrides).verdict(method, path, host) == Verdict(rule is None, rule)


# §5.4: kubectl's order: reject-paths, reject-methods, accept-paths, accept-hosts.
@pytest.mark.parametrize(
    ("method", "path", "host", "rule"),
    [
        ("POST", "/api/v1/namespaces/d/pods/p/exec", "evil.com", EXEC),
        ("POST", "/other", "evil.com", "reject-methods ^POST$"),
        ("GET", "/other", "evil.com", "accept-paths (no pattern matched)"),
        (
            "GET",
            "/api",
            "evil.com",
            "accept-hosts (no pattern matched host 'evil.com')",
        ),
        ("GET", "/api", "localhost", None),
    ],
)
def test_check_order(method: str, path: str, host: str, rule: str | None) -> None:
    f = make(accept_paths="^/api", reject_methods="^POST$")
    assert f.verdict(method, path, host) == Verdict(rule is None, rule)


def test_undecodable_bytes_match_like_go() -> None:
    # A path decoded with surrogateescape (%ff) must not slip past ".*": Go reads the
    # invalid byte as U+FFFD, which "." matches.
    path = "/api/v1/namespaces/\udcff/pods/x/exec"
    assert DEFAULT.verdict("GET", path, "localhost") == Verdict(False, EXEC)
    assert make(accept_paths="^/\\pL").verdict("GET", "/\udcff", "localhost").allowed is False


# The fast paths (literal sets, match-everything patterns, RE2::Set) agree with a plain
# per-pattern re2 search.
@pytest.mark.parametrize(
    "patterns",
    [
        "^localhost$,^127\\.0\\.0\\.1$,^\\[::1\\]$",
        "^$",
        "^.*,x",
        "^a\\.b$,^c\\$$,^\\^d$,^e\\\\$",
        "(?i)^localhost$,^x",
        "^/api/.*/pods/.*/exec,^/api/.*/pods/.*/attach",
        "^a$|^b$,^c$",
        "\\Qa)b\\E,^(x)$",
        "^ab$, ^ab$",
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        "",
        "localhost",
        "127.0.0.1",
        "127a0a0a1",
        "[::1]",
        "a.b",
        "c$",
        "^d",
        "e\\",
        "LOCALHOST",
        "x",
        "a",
        "b",
        "c",
        "a)b",
        "ab",
        " ab",
        "ab\n",
        "/api/v1/namespaces/n/pods/p/exec",
    ],
)
def test_fast_paths_agree_with_re2(patterns: str, text: str) -> None:
    expected = any(re2.search(p, text) for p in patterns.split(","))
    f = make(accept_paths=patterns, reject_paths="")
    assert f.verdict("GET", text, "localhost").allowed is expected
