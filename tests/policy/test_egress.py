"""Proxy selection against Go's rules: docs/go-proxy-selection.md §2–§9 and §11, as tables.

Every ``want`` string is what Go's ``url.URL.String()`` prints. The cases marked
"kubectl" were also checked against kubectl 1.32.4 (go1.23.8) on the reference machine.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.errors import ConfigError, UpstreamError
from kproxy.policy import egress
from kproxy.policy.egress import EgressConfig, EgressError, select
from kproxy.policy.go_url import GoURL
from kproxy.policy.no_proxy import NoProxy, idna_ascii, parse_cidr, parse_ip, split_host_port

P = "http://proxy:3128"


def proxy_for(env: Mapping[str, str], url: str) -> str | None:
    return EgressConfig.from_environ(env).proxy_for(url)


# --- §1–§2: which variable, which scheme --------------------------------------------------

ENVIRONMENT = [
    # uppercase wins; lowercase only when uppercase is unset or empty; never merged
    ({"HTTP_PROXY": "upper:1", "http_proxy": "lower:1"}, "http://example.com", "http://upper:1"),
    ({"HTTP_PROXY": "", "http_proxy": "lower:1"}, "http://example.com", "http://lower:1"),
    ({"http_proxy": "lower:1"}, "http://example.com", "http://lower:1"),
    ({"HTTPS_PROXY": "upper:1", "https_proxy": "lower:1"}, "https://example.com", "http://upper:1"),
    ({"HTTPS_PROXY": "", "https_proxy": "lower:1"}, "https://example.com", "http://lower:1"),
    # a non-empty but unparseable uppercase value still hides the lowercase one
    ({"HTTP_PROXY": " http://bad", "http_proxy": "lower:1"}, "http://example.com", None),
    ({"NO_PROXY": "a.com", "no_proxy": "example.com", "HTTP_PROXY": P}, "http://example.com", P),
    ({"NO_PROXY": "", "no_proxy": "example.com", "HTTP_PROXY": P}, "http://example.com", None),
    ({"no_proxy": "example.com", "HTTP_PROXY": P}, "http://example.com", None),
    # scheme only, no fallback either way (§1 step 2)
    ({"HTTP_PROXY": P}, "https://example.com", None),
    ({"HTTPS_PROXY": P}, "http://example.com", None),
    (
        {"HTTP_PROXY": "http.proxy.tld", "HTTPS_PROXY": "secure.proxy.tld"},
        "http://insecure.tld/",
        "http://http.proxy.tld",
    ),
    (
        {"HTTP_PROXY": "http.proxy.tld", "HTTPS_PROXY": "secure.proxy.tld"},
        "https://secure.tld/",
        "http://secure.proxy.tld",
    ),
    (
        {"HTTP_PROXY": "http.proxy.tld", "HTTPS_PROXY": "https://secure.proxy.tld"},
        "https://secure.tld/",
        "https://secure.proxy.tld",
    ),
    ({"HTTP_PROXY": P, "HTTPS_PROXY": P}, "ftp://insecure.tld/", None),
    ({"HTTP_PROXY": P, "HTTPS_PROXY": P}, "ws://example.com/", None),
    ({"HTTP_PROXY": P, "HTTPS_PROXY": P}, "wss://example.com/", None),
    # the request scheme is lowercased by URL parsing
    ({"HTTPS_PROXY": P}, "HTTPS://example.com/", P),
    # ALL_PROXY is never read
    ({"ALL_PROXY": P, "all_proxy": P}, "http://example.com", None),
    ({"ALL_PROXY": P, "all_proxy": P}, "https://example.com", None),
    ({}, "http://example.com", None),
]


@pytest.mark.parametrize(("env", "url", "want"), ENVIRONMENT)
def test_environment(env: dict[str, str], url: str, want: str | None) -> None:
    assert proxy_for(env, url) == want


# --- §3: proxy values and how Go prints them ----------------------------------------------

PROXY_VALUES = [
    # golang.org/x/net proxyForURLTests
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("cache.corp.example.com:1234", "http://cache.corp.example.com:1234"),
    ("cache.corp.example.com", "http://cache.corp.example.com"),
    ("localhost", "http://localhost"),
    ("https://cache.corp.example.com", "https://cache.corp.example.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://127.0.0.1:8080", "https://127.0.0.1:8080"),
    ("socks5://127.0.0.1", "socks5://127.0.0.1"),
    ("foo://host", "foo://host"),
    # docs/go-proxy-selection.md §3 examples
    ("proxy.example:3128", "http://proxy.example:3128"),
    ("10.0.0.1:3128", "http://10.0.0.1:3128"),
    ("[2001:db8::1]:3128", "http://[2001:db8::1]:3128"),
    ("user:pass@proxy:3128", "http://user:pass@proxy:3128"),
    ("socks5h://h:1080", "socks5h://h:1080"),
    ("socks4://proxy:1080", "socks4://proxy:1080"),
    ("HTTP://Proxy.Example:3128", "http://Proxy.Example:3128"),
    ("http://proxy:3128/", "http://proxy:3128/"),
    ("http://user:p@ss@proxy:3128", "http://user:p%40ss@proxy:3128"),
    # the port is checked eagerly: retried with http:// in front, host "http:" (kubectl)
    ("http://proxy.example:bad", "http://http://proxy.example:bad"),
    ("http://proxy:3128 ", "http://http://proxy:3128%20"),
    ("http://us er@proxy:3128", "http://http://us%20er@proxy:3128"),
    ("http:proxy:3128", "http://http:proxy:3128"),
    # unparseable both ways: dropped, no error, direct (kubectl)
    (" http://proxy:3128", None),
    ("\thttp://proxy:3128", None),
    ("127.0.0.2:abc", None),
    ("http://proxy:3128/%zz", None),
    # the first parse succeeded without scheme or host and the retry failed: Go keeps the
    # first parse, and dialing it fails (kubectl: "dial tcp :0")
    ("localhost:abc", "localhost:abc"),
    ("proxy host", "proxy%20host"),
    (" bad", "%20bad"),
    ("%41", "%41"),
    # other odd but accepted values
    ("*", "http://*"),
    ("127.0.0.2:", "http://127.0.0.2:"),
    ("http://:3128", "http://:3128"),
    ("//proxy:3128", "http:////proxy:3128"),
    ("http://[fe80::1%25eth0]:3128", "http://[fe80::1%25eth0]:3128"),
    ("http://proxy:3128#frag", "http://proxy:3128#frag"),
    ("http://proxy:3128?x=1", "http://proxy:3128?x=1"),
    ("http://us%20er:p%25w@proxy", "http://us%20er:p%25w@proxy"),
    ("http://user@proxy:3128", "http://user@proxy:3128"),
    ("http://user:@proxy:3128", "http://user:@proxy:3128"),
    ("http://a!b:c$d@proxy", "http://a%21b:c$d@proxy"),
]


@pytest.mark.parametrize(("value", "want"), PROXY_VALUES)
def test_proxy_value(value: str, want: str | None) -> None:
    assert proxy_for({"HTTPS_PROXY": value}, "https://example.com") == want
    assert proxy_for({"HTTP_PROXY": value}, "http://example.com") == want


def test_empty_value_is_unset() -> None:
    assert proxy_for({"HTTPS_PROXY": ""}, "https://example.com") is None


@pytest.mark.parametrize(
    ("value", "hostname", "port", "username", "password"),
    [
        ("http://user:p%40ss@proxy:3128", "proxy", "3128", "user", "p@ss"),  # §4: decoded
        ("http://user:p@ss@proxy:3128", "proxy", "3128", "user", "p@ss"),
        ("http://user@proxy", "proxy", "", "user", None),
        ("http://user:@proxy", "proxy", "", "user", ""),
        ("http://[2001:db8::1]:3128", "2001:db8::1", "3128", None, None),
        ("http://[fe80::1%25eth0]:3128", "fe80::1%eth0", "3128", None, None),
        ("http://proxy.example:bad", "http", "", None, None),  # re-read as http://http://…
        ("https://Proxy.Example", "Proxy.Example", "", None, None),  # no default port added
    ],
)
def test_proxy_url_parts(value: str, hostname: str, port: str, username: str | None, password: str | None) -> None:
    decision = EgressConfig.from_environ({"HTTP_PROXY": value}).decide("http://example.com")
    assert decision.proxy is not None
    assert (decision.proxy.hostname, decision.proxy.port) == (hostname, port)
    assert (decision.proxy.username, decision.proxy.password) == (username, password)


@pytest.mark.parametrize(
    "raw",
    [
        "http://h/a b?x y#f g",
        "http://h/%2F",
        "http://h/a%2fb",
        "mailto:x@y",
        "/rel/path",
        "http://h?",
        "http://[::1]:80/",
        "HTTP://H",
        "http://h/ü",
        "http://h#%41",
        "http://ü.example/",
        "http:///p",
        "*",
    ],
)
def test_go_url_reparses_to_itself(raw: str) -> None:
    printed = str(GoURL.parse(raw))
    assert str(GoURL.parse(printed)) == printed


@pytest.mark.parametrize(
    ("raw", "printed"),
    [
        ("http://h/a b?x y#f g", "http://h/a%20b?x y#f%20g"),
        ("http://h/%2F", "http://h/%2F"),
        ("http://h?", "http://h?"),
        ("http://ü.example/", "http://%C3%BC.example/"),
        ("mailto:x@y", "mailto:x@y"),
    ],
)
def test_go_url_printing(raw: str, printed: str) -> None:
    assert str(GoURL.parse(raw)) == printed


@pytest.mark.parametrize(
    "raw",
    [
        "http://h:bad",
        "1.2.3.4:80",
        ":foo",
        "http://[::1",
        "http://a b",
        "http://h/%zz",
        "http://h\n",
        "http://%41",
        "http://x y@h",
        "http://[::1]x",
    ],
)
def test_go_url_errors(raw: str) -> None:
    with pytest.raises(ValueError):
        GoURL.parse(raw)


def test_redaction_never_shows_passwords() -> None:
    for value in ("http://user:secret@proxy:3128", "http://user:secret@proxy:bad", "user:secret@p:abc"):
        config = EgressConfig.from_environ({"HTTPS_PROXY": value, "HTTP_PROXY": value})
        for text in (config.explain("https://example.com"), repr(config), *config.warnings):
            assert "secret" not in text, text
    assert "secret" not in repr(GoURL.parse("http://u:secret@h"))
    assert GoURL.parse("http://u:secret@h").redacted() == "http://u:xxxxx@h"


# --- §1 step 3: CGI ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": P}, "http://example.com"),
        ({"REQUEST_METHOD": "GET", "http_proxy": P}, "http://example.com"),  # either case
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": P, "NO_PROXY": "*"}, "http://example.com"),  # before NO_PROXY
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": P}, "http://127.0.0.1:8080"),  # before loopback
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": P}, "http://localhost"),
        ({"REQUEST_METHOD": "PUT", "HTTP_PROXY": "localhost:abc"}, "http://example.com"),  # parsed: refused
    ],
)
def test_cgi_refuses_the_http_proxy(env: dict[str, str], url: str) -> None:
    config = EgressConfig.from_environ(env)
    with pytest.raises(EgressError, match="refusing to use HTTP_PROXY value in CGI environment"):
        config.proxy_for(url)
    assert config.explain(url).startswith("error: refusing to use HTTP_PROXY")
    assert issubclass(EgressError, UpstreamError)


@pytest.mark.parametrize(
    ("env", "url", "want"),
    [
        (
            {"REQUEST_METHOD": "GET", "HTTPS_PROXY": "https://secure.proxy.tld"},
            "https://secure.tld/",
            "https://secure.proxy.tld",
        ),  # HTTPS proxies are still used
        ({"REQUEST_METHOD": "", "HTTP_PROXY": P}, "http://example.com", P),  # empty: not CGI
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": " http://bad"}, "http://example.com", None),  # dropped: no error
        ({"REQUEST_METHOD": "GET"}, "http://example.com", None),
    ],
)
def test_cgi_other_cases(env: dict[str, str], url: str, want: str | None) -> None:
    assert proxy_for(env, url) == want


# --- §5–§6: the request host, loopback ----------------------------------------------------

LOOPBACK = [
    ("http://localhost", None),
    ("http://localhost:8080", None),
    ("http://127.0.0.1", None),
    ("http://127.0.0.2", None),
    ("http://127.255.255.254:1", None),
    ("http://[::1]", None),
    ("http://[::1%25lo]:6443", None),
    ("http://[::ffff:127.0.0.1]", None),
    ("http://[::2]", P),
    ("http://LOCALHOST", P),  # case-sensitive, before lowercasing
    ("http://Localhost", P),
    ("http://localhost.", P),
    ("http://foo.localhost", P),
    ("http://127.0.0.1.nip.io", P),
    ("http://0.0.0.0", P),
    ("http://[::]", P),
    ("http://[::ffff:10.0.0.1]", P),
]


@pytest.mark.parametrize(("url", "want"), LOOPBACK)
def test_loopback_is_never_proxied(url: str, want: str | None) -> None:
    assert proxy_for({"HTTP_PROXY": P}, url) == want
    # whatever NO_PROXY says
    assert proxy_for({"HTTP_PROXY": P, "NO_PROXY": "example.org"}, url) == want


# golang.org/x/net UseProxyTests with its noProxy string (each host on port 80)
GO_NO_PROXY = (
    "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, 10.0.0.0/30, "
    "2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, 2002:db8:a::45/64"
)
GO_USE_PROXY = [
    ("localhost", False),
    ("127.0.0.1", False),
    ("127.0.0.2", False),
    ("[::1]", False),
    ("[::2]", True),
    ("192.168.1.1", False),
    ("192.168.1.2", True),
    ("192.168.1.3", False),
    ("192.168.1.4", True),
    ("10.0.0.2", False),
    ("[2001:db8::52:0:1]", False),
    ("[2001:db8::52:0:2]", True),
    ("[2001:db8::52:0:3]", False),
    ("[2002:db8:a::123]", False),
    ("[fe80::424b:c8be:1643:a1b6]", True),
    ("barbaz.net", True),
    ("www.barbaz.net", False),
    ("foobar.com", False),
    ("www.foobar.com", False),
    ("foofoobar.com", True),
    ("baz.com", True),
    ("localhost.net", True),
    ("local.localhost", True),
    ("barbarbaz.net", True),
    ("wildcard.io", True),
    ("nested.wildcard.io", False),
    ("awildcard.io", True),
]


@pytest.mark.parametrize(("host", "proxied"), GO_USE_PROXY)
def test_go_use_proxy_table(host: str, proxied: bool) -> None:
    url = f"http://{host}:80"
    assert (proxy_for({"HTTP_PROXY": P, "NO_PROXY": GO_NO_PROXY}, url) is not None) is proxied
    assert proxy_for({"HTTP_PROXY": P, "NO_PROXY": "*"}, url) is None  # TestAllNoProxy


def test_invalid_no_proxy_does_not_break() -> None:
    assert proxy_for({"HTTP_PROXY": P, "NO_PROXY": ":1"}, "http://example.com:80") == P  # TestInvalidNoProxy


# --- §7–§8: NO_PROXY -----------------------------------------------------------------------

NO_PROXY = [
    # "*" anywhere in the list, with spaces
    ("*", "https://example.com", None),
    (" * ", "https://example.com", None),
    ("a.com,*", "https://10.1.2.3", None),
    ("*,a.com", "https://[2001:db8::1]", None),
    ("*example.com", "https://www.example.com", P),  # a star without a dot never matches
    # names: the name and its subdomains, at a dot boundary
    ("example.com", "https://example.com", None),
    ("example.com", "https://www.example.com", None),
    ("example.com", "https://notexample.com", P),
    ("ample.com", "https://example.com", P),
    ("EXAMPLE.COM", "https://www.example.com", None),  # entries are lowercased
    ("example.com", "https://EXAMPLE.COM", None),  # hosts too (after the localhost test)
    ("example.com.", "https://example.com", P),  # trailing dots are significant
    ("example.com", "https://example.com.", P),
    ("example.com.", "https://example.com.", None),
    # ".suffix" and "*.suffix": subdomains only
    (".example.com", "https://example.com", P),
    (".example.com", "https://www.example.com", None),
    ("*.example.com", "https://example.com", P),
    ("*.example.com", "https://a.b.example.com", None),
    (".foo.com", "https://example.com", P),
    ("  example.com  ,  other.org ", "https://other.org", None),
    (",,example.com,,", "https://example.com", None),
    # IDNA: both sides in punycode (x/net IDN cases)
    (".示例.com", "http://www.示例.com", None),
    ("xn--fsq092h.com", "http://www.示例.com", None),
    ("示例.com", "http://www.xn--fsq092h.com", None),
    ("ＥＸＡＭＰＬＥ.com", "https://example.com", None),  # kubectl
    ("xn--strae-oqa.de", "https://straße.de", None),  # nontransitional: ß kept (kubectl)
    ("strasse.de", "https://straße.de", P),  # kubectl
    ("my_host.示例.com", "https://my_host.xn--fsq092h.com", P),  # STD3: conversion fails (kubectl)
    # ports: an entry port matches only the effective port, compared as strings
    ("example.com:443", "https://example.com/", None),
    ("example.com:443", "https://example.com:443/", None),
    ("example.com:8443", "https://example.com/", P),
    ("example.com:80", "https://example.com/", P),
    ("example.com", "https://example.com:8443/", None),
    ("10.9.9.9:80", "http://10.9.9.9", None),
    ("10.9.9.9:80", "https://10.9.9.9", P),
    ("10.9.9.9:0443", "https://10.9.9.9", P),
    ("192.168.1.2:81", "http://192.168.1.2:80", P),
    ("192.168.1.3:80", "http://192.168.1.3:80", None),
    ("[2001:db8::1]:443", "https://[2001:db8::1]", None),
    ("[2001:db8::1]:443", "https://[2001:db8::1]:8443", P),
    # IP literals by value
    ("2001:db8::1", "https://[2001:db8::1]", None),
    ("2001:db8:0:0:0:0:0:1", "https://[2001:db8::1]", None),
    ("2001:DB8::1", "https://[2001:db8:0:0:0:0:0:1]:443", None),
    ("10.1.1.1", "https://[::ffff:10.1.1.1]", None),
    ("::ffff:10.1.1.1", "https://10.1.1.1", None),
    ("[::ffff:10.1.1.1]:443", "https://10.1.1.1", None),
    ("fe80::1", "https://[fe80::1%25eth0]", None),  # host zone dropped for comparison
    ("fe80::1%eth0", "https://[fe80::1%25eth0]", P),  # an entry cannot carry a zone
    # CIDRs, IPv4 and IPv6, host bits masked
    ("10.0.0.0/8", "https://10.1.2.3", None),
    ("10.1.2.3/8", "https://10.200.0.1", None),
    ("10.0.0.0/8", "https://11.0.0.1", P),
    ("10.0.0.0/8", "https://[::ffff:10.1.1.1]", None),  # IPv4 CIDRs contain mapped addresses
    ("10.0.0.0/08", "https://10.1.2.3", None),  # leading zeros in the length are fine
    ("2001:db8::/32", "https://[2001:db8::1]", None),
    ("2001:db8::/32", "https://[2001:db9::1]", P),
    ("2002:db8:a::45/64", "https://[2002:db8:a::123]", None),
    ("fe80::/10", "https://[fe80::1%25eth0]", None),
    ("::ffff:10.0.0.0/104", "https://10.1.2.3", None),  # a mapped network is an IPv4 one
    ("::ffff:0:0/96", "https://10.9.9.9", None),
    ("::/0", "https://10.1.2.3", P),  # an IPv6 network never holds IPv4 hosts
    ("::/0", "https://[2001:db8::1]", None),
    ("0.0.0.0/0", "https://[2001:db8::1]", P),
    # domain entries never match IP hosts (CVE-2025-22870), IP entries never match names
    ("0.0.1", "https://10.0.0.1", P),
    ("example.com", "https://[1000::%25.example.com]", P),
    (".example.com", "https://[1000::%25.example.com]", P),
    ("10.0.0.1", "https://10.0.0.1.nip.io", P),
    ("10.0.0.0/8", "https://10.0.0.1.nip.io", P),  # no DNS resolution, ever
    # §7 "not supported": parse, never match
    ("[2001:db8::1]", "https://[2001:db8::1]", P),
    ("2001:db8::1:80", "https://[2001:db8::1]:80", P),  # read as the address 2001:db8::1:80
    ("2001:db8::1:80", "https://[2001:db8::1:80]", None),
    ("10.0.0.0/8:80", "http://10.1.2.3", P),
    ("10.0.0.0/33", "https://10.1.2.3", P),
    ("10.0.0.0/255.0.0.0", "https://10.1.2.3", P),
    ("192.168.", "https://192.168.1.1", P),
    ("http://example.com", "http://example.com", P),
    ("example.com/", "https://example.com", P),
    ("010.0.0.0/8", "https://10.1.2.3", P),  # Go's rule; kubectl's CIDR wrapper differs (§9)
    ("10.0.0.0/8", "https://010.1.2.3", P),  # a name for Go (kubectl's wrapper: direct, §9)
    ("[10.9.9.9]:443", "https://10.9.9.9", None),
    ("10.9.9.9/32:443", "https://10.9.9.9", P),
    (":1", "https://example.com", P),
    ("localhost", "https://LOCALHOST", None),  # not loopback, but a NO_PROXY name match
]


@pytest.mark.parametrize(("no_proxy", "url", "want"), NO_PROXY)
def test_no_proxy(no_proxy: str, url: str, want: str | None) -> None:
    env = {"HTTP_PROXY": P, "HTTPS_PROXY": P, "NO_PROXY": no_proxy}
    assert proxy_for(env, url) == want


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_no_proxy_and_proxy_values_never_raise(no_proxy: str, value: str) -> None:
    config = EgressConfig.from_environ({"HTTPS_PROXY": value, "NO_PROXY": no_proxy})
    config.proxy_for("https://example.com:6443/")
    config.proxy_for("https://[2001:db8::1]/")
    assert isinstance(config.warnings, tuple)
    assert isinstance(config.explain("https://10.1.2.3"), str)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("10.0.0.0/8", "cidr"),
        ("10.0.0.1", "ip"),
        ("[2001:db8::1]:443", "ip"),
        ("example.com", "domain"),
        ("*.example.com", "domain"),
        ("[2001:db8::1]", "domain"),
        ("010.0.0.0/8", "domain"),
        ("*", "all"),
    ],
)
def test_no_proxy_classification(text: str, kind: str) -> None:
    assert NoProxy.parse(text).entries[0].kind == kind


def test_go_net_helpers() -> None:
    assert split_host_port("[::1]:80") == ("::1", "80")
    assert split_host_port("a:b:c") is None
    assert split_host_port("[::1]") is None
    assert split_host_port("host") is None
    assert parse_ip("010.0.0.1") is None
    assert parse_ip("fe80::1%eth0") is None
    assert str(parse_ip("fe80::1%eth0", zone=True)) == "fe80::1"
    assert parse_ip("1.2.3.4%eth0", zone=True) is None
    assert parse_ip("fe80::1%", zone=True) is None
    assert str(parse_cidr("10.1.2.3/8")) == "10.0.0.0/8"
    assert parse_cidr("10.0.0.0/+8") is None
    assert idna_ascii("www.示例.com") == "www.xn--fsq092h.com"
    assert idna_ascii(".示例.com") == ".xn--fsq092h.com"
    assert idna_ascii("a\u200db.示例") == "a\u200db.示例"  # joiner: conversion fails, value kept


# --- §9: kubeconfig proxy-url --------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy_url", "url", "want"),
    [
        ("http://proxy:3128", "https://10.1.2.3", "http://proxy:3128"),
        ("https://proxy:3128", "http://example.com", "https://proxy:3128"),
        ("socks5://proxy:1080", "https://127.0.0.1:6443", "socks5://proxy:1080"),  # loopback proxied too
        ("socks5://proxy:1080", "https://localhost", "socks5://proxy:1080"),
        ("http://user:p@ss@proxy:3128", "https://x", "http://user:p%40ss@proxy:3128"),
        ("HTTP://Proxy:3128", "https://x", "http://Proxy:3128"),
    ],
)
def test_proxy_url(proxy_url: str, url: str, want: str) -> None:
    assert EgressConfig.from_proxy_url(proxy_url).proxy_for(url) == want


def test_proxy_url_replaces_the_environment() -> None:
    env = {"HTTPS_PROXY": "env-proxy:1", "NO_PROXY": "*", "REQUEST_METHOD": "GET"}
    config = select(proxy_url="http://kube-proxy:3128", environ=env)
    assert config.proxy_for("https://example.com") == "http://kube-proxy:3128"
    assert config.proxy_for("http://example.com") == "http://kube-proxy:3128"  # no CGI check
    assert config.explain("https://10.0.0.1") == (
        "proxy http://kube-proxy:3128 from kubeconfig proxy-url "
        "(every request; the environment and NO_PROXY are not used)"
    )


@pytest.mark.parametrize(
    ("proxy_url", "message"),
    [
        ("socks5h://proxy:1080", 'unsupported scheme "socks5h", must be http, https, or socks5'),
        ("ftp://proxy", 'unsupported scheme "ftp"'),
        ("proxy:3128", 'unsupported scheme "proxy"'),  # schemeless values are rejected here
        ("10.0.0.1:3128", "could not parse"),
        ("http://proxy:bad", "could not parse"),
        ("http:///path", "no proxy host"),
        ("ftp://user:secret@proxy", "'ftp://xxxxx@proxy'"),
    ],
)
def test_proxy_url_errors(proxy_url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="proxy-url") as info:
        EgressConfig.from_proxy_url(proxy_url)
    assert message in str(info.value)
    assert "secret" not in str(info.value)


# --- §11: AKS httpProxyConfig and the precedence among sources ----------------------------

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
B64 = base64.b64encode(PEM).decode()


def aks(doc: object) -> tuple[EgressConfig, bytes | None]:
    return EgressConfig.from_http_proxy_config(json.dumps(doc), "/etc/aks-proxy.json")


def test_http_proxy_config_maps_to_go_settings() -> None:
    config, ca = aks(
        {
            "httpProxy": "http://myproxy.server.com:8080/",
            "httpsProxy": "https://myproxy.server.com:8080/",
            "noProxy": ["localhost", "127.0.0.1", "10.0.0.0/8", ".svc", "kubernetes.default"],
            "trustedCa": B64,
        }
    )
    assert ca == PEM
    assert config.proxy_for("http://example.com") == "http://myproxy.server.com:8080/"
    assert config.proxy_for("https://example.com") == "https://myproxy.server.com:8080/"
    assert config.proxy_for("https://10.1.2.3") is None
    assert config.proxy_for("https://api.svc") is None
    assert config.proxy_for("https://svc") == "https://myproxy.server.com:8080/"
    assert config.explain("https://10.1.2.3") == (
        "direct: noProxy entry 10.0.0.0/8 in /etc/aks-proxy.json matches 10.1.2.3"
    )
    assert config.explain("https://example.com") == (
        "proxy https://myproxy.server.com:8080/ from httpsProxy in /etc/aks-proxy.json "
        "(no noProxy entry matches example.com)"
    )


def test_http_proxy_config_https_falls_back_to_http_proxy() -> None:
    config, ca = aks({"httpProxy": "http://p:3128", "trustedCA": B64})  # the AKS example's spelling
    assert ca == PEM
    assert config.proxy_for("https://example.com") == "http://p:3128"
    assert config.explain("https://example.com") == (
        "proxy http://p:3128 from httpProxy in /etc/aks-proxy.json (httpsProxy is not set: AKS uses httpProxy for both)"
    )


def test_http_proxy_config_other_shapes() -> None:
    config, ca = aks({"httpsProxy": "http://p:3128", "noProxy": None, "trustedCa": None})
    assert ca is None
    assert config.proxy_for("http://example.com") is None  # no fallback the other way
    assert config.explain("http://example.com") == "direct: httpProxy is not set in /etc/aks-proxy.json"
    config, _ = aks({"httpProxyConfig": {"httpProxy": "http://p:1"}})  # ARM property pasted whole
    assert config.proxy_for("http://x") == "http://p:1"
    config, _ = aks({"noProxy": ["*"], "httpProxy": "http://p:1"})
    assert config.proxy_for("http://x") is None
    config, _ = aks({})
    assert config.explain("https://x") == "direct: neither httpsProxy nor httpProxy is set in /etc/aks-proxy.json"
    config, _ = aks({"httpProxy": "http://p:1", "noProxy": ["127.0.0.1"]})
    assert config.proxy_for("http://127.0.0.1") is None
    assert not config.cgi


@pytest.mark.parametrize(
    ("doc", "fragments"),
    [
        ('{"httpProxy": "http://p:1",}', ["not valid JSON", "line 1 column"]),
        ("[]", ["must be a JSON object"]),
        ({"httpproxy": "http://p:1"}, ["unknown field 'httpproxy'"]),
        ({"httpProxy": 3128}, ["httpProxy must be a string", "3128"]),
        ({"httpProxy": "https://p:1"}, ["httpProxy 'https://p:1'", "http://"]),
        ({"httpProxy": "socks5://p:1"}, ["httpProxy 'socks5://p:1'"]),
        ({"httpProxy": "p:3128"}, ["httpProxy 'p:3128'", "did you mean 'http://p:3128'"]),
        ({"httpProxy": "http://p:bad"}, ["httpProxy 'http://p:bad' is not a valid URL"]),
        ({"httpsProxy": "ftp://p:1"}, ["httpsProxy 'ftp://p:1'", "http:// or https://"]),
        ({"httpsProxy": ["http://p:1"]}, ["httpsProxy must be a string", '["http://p:1"]']),
        ({"noProxy": "a.com,b.com"}, ["noProxy must be a list", "a.com,b.com"]),
        ({"noProxy": ["a.com", 7]}, ["noProxy[1] must be a string", "7"]),
        ({"noProxy": ["*.example.com"]}, ["noProxy[0] '*.example.com'", "write '.example.com'"]),
        ({"noProxy": ["*example.com"]}, ["noProxy[0] '*example.com'", "remove the '*'"]),
        ({"noProxy": ["a.com,b.com"]}, ["noProxy[0] 'a.com,b.com'", "comma"]),
        ({"trustedCa": "not base64!"}, ["trustedCa 'not base64!' is not valid base64"]),
        ({"trustedCa": 12}, ["trustedCa must be a string", "12"]),
        ({"trustedCa": base64.b64encode(b"hello").decode()}, ["trustedCa decodes to data that is not a PEM"]),
        ({"trustedCa": B64, "trustedCA": B64}, ["both trustedCa and trustedCA"]),
        ({"httpProxy": "http://user:secret@p:bad"}, ["httpProxy 'http://xxxxx@p:bad'"]),
    ],
)
def test_http_proxy_config_errors(doc: object, fragments: list[str]) -> None:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(ConfigError) as info:
        EgressConfig.from_http_proxy_config(text, "/etc/aks-proxy.json")
    message = str(info.value)
    assert message.startswith("/etc/aks-proxy.json: ")
    for fragment in fragments:
        assert fragment in message
    assert "secret" not in message


def test_select_precedence() -> None:
    env = {"HTTPS_PROXY": "env:1"}
    file_config, _ = aks({"httpProxy": "http://file:1"})
    assert select(http_proxy_config=file_config, proxy_url="http://kube:1", environ=env) is file_config
    assert select(proxy_url="http://kube:1", environ=env).proxy_for("https://x") == "http://kube:1"
    assert select(proxy_url="", environ=env).proxy_for("https://x") == "http://env:1"
    assert select(environ={}).proxy_for("https://x") is None


# --- explain() and warnings ----------------------------------------------------------------

EXPLAIN = [
    (
        {"HTTPS_PROXY": P, "NO_PROXY": "10.0.0.0/8"},
        "https://10.1.2.3",
        "direct: NO_PROXY entry 10.0.0.0/8 matches 10.1.2.3",
    ),
    (
        {"HTTPS_PROXY": P, "no_proxy": "example.com:443"},
        "https://www.example.com",
        "direct: no_proxy entry example.com:443 matches www.example.com:443",
    ),
    ({"HTTPS_PROXY": P, "NO_PROXY": "a.com, *"}, "https://x", "direct: NO_PROXY entry * matches every host"),
    ({"HTTPS_PROXY": P}, "https://127.0.0.1:6443", "direct: loopback address 127.0.0.1 is never proxied"),
    ({"HTTPS_PROXY": P}, "https://localhost:6443", "direct: host localhost is never proxied"),
    ({"HTTPS_PROXY": P}, "https://example.com", "proxy http://proxy:3128 from HTTPS_PROXY"),
    (
        {"https_proxy": P, "NO_PROXY": ".svc"},
        "https://example.com",
        "proxy http://proxy:3128 from https_proxy (no NO_PROXY entry matches example.com)",
    ),
    (
        {"HTTPS_PROXY": P, "NO_PROXY": "example.com:443,[::1]:6443"},
        "https://example.com:6443",
        "proxy http://proxy:3128 from HTTPS_PROXY (no NO_PROXY entry matches example.com:6443)",
    ),
    ({"HTTPS_PROXY": "http://u:secret@p:1"}, "https://x", "proxy http://u:xxxxx@p:1 from HTTPS_PROXY"),
    ({}, "https://x", "direct: HTTPS_PROXY and https_proxy are not set"),
    (
        {"HTTP_PROXY": P},
        "https://x",
        "direct: HTTPS_PROXY and https_proxy are not set (HTTP_PROXY is never used for https URLs)",
    ),
    (
        {"HTTPS_PROXY": P},
        "http://x",
        "direct: HTTP_PROXY and http_proxy are not set (HTTPS_PROXY is never used for http URLs)",
    ),
    (
        {"HTTPS_PROXY": " http://p:1"},
        "https://x",
        "direct: HTTPS_PROXY value ' http://p:1' cannot be parsed; Go ignores it",
    ),
    ({"HTTPS_PROXY": P}, "wss://x", "direct: only http and https URLs use a proxy (scheme wss)"),
    (
        {"REQUEST_METHOD": "GET", "HTTP_PROXY": P},
        "http://x",
        "error: refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy "
        "(REQUEST_METHOD is set; HTTP_PROXY)",
    ),
    ({}, "http://x:bad", "error: 'http://x:bad' is not a valid URL: invalid port ':bad' after host"),
]


@pytest.mark.parametrize(("env", "url", "line"), EXPLAIN)
def test_explain(env: dict[str, str], url: str, line: str) -> None:
    assert EgressConfig.from_environ(env).explain(url) == line


def test_proxy_for_rejects_bad_urls() -> None:
    with pytest.raises(ValueError):
        EgressConfig.from_environ({}).proxy_for("http://x:bad")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"HTTPS_PROXY": " http://p:1"}, "HTTPS_PROXY value ' http://p:1' cannot be parsed as a URL"),
        ({"HTTP_PROXY": "http://p:bad"}, "is read by Go as http://http://p:bad (host 'http')"),
        ({"HTTP_PROXY": "localhost:abc"}, "which has no host"),
        ({"HTTP_PROXY": "foo://h"}, "scheme foo:// is used as a plain HTTP proxy"),
        ({"HTTP_PROXY": "http://p:3128 "}, "is read by Go as http://http://p:3128%20 (host 'http')"),
        ({"HTTP_PROXY": "http:p:3128"}, "is read by Go as http://http:p:3128 (host 'http:p')"),
        ({"NO_PROXY": "[2001:db8::1]"}, "NO_PROXY: entry [2001:db8::1] never matches"),
        ({"no_proxy": "010.0.0.0/8"}, "no_proxy: entry 010.0.0.0/8 never matches: not a CIDR for Go"),
        ({"NO_PROXY": "10.0.0.0/8:80"}, "entry 10.0.0.0/8:80 never matches"),
        ({"NO_PROXY": "192.168."}, "partial IP addresses are not prefixes"),
        ({"NO_PROXY": "http://example.com"}, "a URL is not an entry"),
        ({"NO_PROXY": "*example.com"}, "'*' only works alone"),
        ({"NO_PROXY": "a.com:https"}, "port 'https' is not a number"),
    ],
)
def test_warnings(env: dict[str, str], fragment: str) -> None:
    assert any(fragment in w for w in EgressConfig.from_environ(env).warnings), EgressConfig.from_environ(env).warnings


def test_no_warnings_for_ordinary_settings() -> None:
    env = {
        "HTTPS_PROXY": "http://proxy:3128//",
        "HTTP_PROXY": "socks5h://[fe80::1%25eth0]:1080",
        "NO_PROXY": "localhost,127.0.0.1,.svc,*.corp,10.0.0.0/8,fd00::/8,[::1]:6443,example.com:443",
    }
    assert EgressConfig.from_environ(env).warnings == ()


# --- the module docstring's examples, and the public names --------------------------------

DOC_ENV = {"HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": ".svc,10.0.0.0/8,example.com:443"}
DOC_EXAMPLES = [
    ("https://api.example.com/", None),
    ("https://api.example.com:6443/", "http://proxy.corp:3128"),
    ("https://10.1.2.3:6443/", None),
    ("https://kubernetes.svc/", None),
    ("https://svc/", "http://proxy.corp:3128"),
    ("http://api.example.com/", None),
    ("https://127.0.0.1:6443/", None),
    ("https://LOCALHOST/", "http://proxy.corp:3128"),
]


@pytest.mark.parametrize(("url", "want"), DOC_EXAMPLES)
def test_docstring_examples(url: str, want: str | None) -> None:
    assert proxy_for(DOC_ENV, url) == want
    assert (egress.__doc__ or "").count(url) == 1


def test_public_names() -> None:
    for name in egress.__all__:
        assert hasattr(egress, name)
    assert {"EgressConfig", "EgressError", "select"} <= set(egress.__all__)
