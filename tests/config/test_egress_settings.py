"""kproxy.config.egress_settings, wired into Options: the three sources and their
precedence, the route the dialer takes, proxy credentials, custom CA trust, start-up
notices and warnings (no network here; see integration/test_egress.py). The route's URL
parsing: test_proxy_route.py; --explain-egress: tests/cli/test_explain.py."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kproxy.cli.explain import explain_egress
from kproxy.config.flags import Flags
from kproxy.config.options import Options
from kproxy.errors import ConfigError
from tests.certificates import ca_subjects


def write_kubeconfig(tmp_path: Path, server: str = "https://10.1.2.3:6443", proxy_url: str = "") -> Path:
    path = tmp_path / "config"
    extra = f"    proxy-url: {proxy_url}\n" if proxy_url else ""
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {server}\n{extra}"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
        "users:\n- name: u\n  user:\n    token: t\n"
    )
    return path


def build(tmp_path: Path, environ: dict[str, str] | None = None, **kw: object) -> Options:
    if "kubeconfig" not in kw:
        kw["kubeconfig"] = str(write_kubeconfig(tmp_path))
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    return Options.from_flags(flags, environ={"HOME": str(tmp_path), **(environ or {})}, cwd=str(tmp_path))


def proxy_config(tmp_path: Path, **doc: object) -> str:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(doc))
    return str(path)


# -- sources and precedence ---------------------------------------------------------------


def test_no_proxy_anywhere_is_direct_and_quiet(tmp_path: Path) -> None:
    opts = build(tmp_path, environ={"NO_PROXY": "bad entry/, *.x:y"})
    assert opts.upstream.proxy is None
    assert str(opts.upstream.egress) == "direct: HTTPS_PROXY and https_proxy are not set"
    assert opts.notices == () and opts.warnings == ()


@pytest.mark.parametrize(
    ("environ", "read"),
    [
        ({}, False),
        ({"NO_PROXY": "10.0.0.0/8", "REQUEST_METHOD": "GET", "HTTPS_PROXY": ""}, False),  # nothing to proxy
        ({"http_proxy": "proxy:3128"}, True),
        ({"HTTPS_PROXY": "proxy:3128"}, True),
    ],
)
def test_the_proxy_rules_are_read_only_when_a_proxy_is_set(tmp_path: Path, environ: dict[str, str], read: bool) -> None:
    # docs/startup.md §7: without a proxy anywhere every URL goes direct, and the decision
    # and --explain-egress read as they did when the environment was parsed.
    opts = build(tmp_path, environ=environ)
    assert (opts.egress.config is not None) == read
    if not read:
        assert str(opts.upstream.egress) == "direct: HTTPS_PROXY and https_proxy are not set"
        shown = explain_egress(opts, ["http://example.com/"])
        assert shown[:4] == [
            "proxy settings: the environment",
            "  HTTP_PROXY   (not set)",
            "  HTTPS_PROXY  (not set)",
            f"  NO_PROXY     {environ.get('NO_PROXY') or '(not set)'}",
        ]
        assert "  direct: HTTP_PROXY and http_proxy are not set" in shown


def test_environment(tmp_path: Path) -> None:
    opts = build(tmp_path, environ={"https_proxy": "proxy.corp:3128", "NO_PROXY": "example.com"})
    route = opts.upstream.proxy
    assert route is not None
    assert (route.kind, route.host, route.port, route.display, route.source) == (
        "http",
        "proxy.corp",
        3128,
        "http://proxy.corp:3128",
        "https_proxy",
    )
    assert opts.notices == (
        "reaching the API server https://10.1.2.3:6443 through the proxy http://proxy.corp:3128 (from https_proxy)",
    )


def test_no_proxy_cidr_sends_the_api_server_direct(tmp_path: Path) -> None:
    opts = build(tmp_path, environ={"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "10.0.0.0/8"})
    assert opts.upstream.proxy is None
    assert str(opts.upstream.egress) == "direct: NO_PROXY entry 10.0.0.0/8 matches 10.1.2.3"
    assert opts.notices == ()


def test_proxy_url_replaces_the_environment(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path, "https://127.0.0.1:6443", proxy_url="socks5://gw:1080")
    opts = build(tmp_path, {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}, kubeconfig=str(kubeconfig))
    route = opts.upstream.proxy
    assert route is not None and (route.kind, route.port, route.source) == ("socks5", 1080, "kubeconfig proxy-url")
    assert opts.egress.source.startswith("the kubeconfig cluster's proxy-url")


def test_http_proxy_config_wins(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path, proxy_url="http://kubeconfig:1")
    config = proxy_config(tmp_path, httpProxy="http://aks:3128")
    opts = build(tmp_path, {"HTTPS_PROXY": "http://env:1"}, kubeconfig=str(kubeconfig), http_proxy_config=config)
    route = opts.upstream.proxy
    assert route is not None and route.display == "http://aks:3128"
    assert route.source == f"httpProxy in {config} (httpsProxy is not set: AKS uses httpProxy for both)"
    assert opts.egress.source.startswith(f"--http-proxy-config {config}")


def test_http_proxy_config_no_proxy_and_loopback(tmp_path: Path) -> None:
    config = proxy_config(tmp_path, httpsProxy="https://aks:3129", noProxy=["10.0.0.0/8"])
    opts = build(tmp_path, http_proxy_config=config)
    assert opts.upstream.proxy is None
    assert str(opts.upstream.egress) == f"direct: noProxy entry 10.0.0.0/8 in {config} matches 10.1.2.3"
    kubeconfig = write_kubeconfig(tmp_path, "https://127.0.0.1:6443")
    opts = build(tmp_path, kubeconfig=str(kubeconfig), http_proxy_config=config)
    assert opts.upstream.proxy is None  # loopback is never proxied (Go's rule)


def test_cgi_rule_fails_at_start(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path, "http://api.example:8080")
    with pytest.raises(ConfigError, match="refusing to use HTTP_PROXY value in CGI environment"):
        build(tmp_path, {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, kubeconfig=str(kubeconfig))


def test_proxy_url_with_a_bad_scheme_names_the_field(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path, proxy_url="socks4://u:secret@gw:1080")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(kubeconfig))
    assert "proxy-url" in str(info.value) and "socks4" in str(info.value) and "secret" not in str(info.value)


def test_warnings_only_when_a_proxy_is_configured(tmp_path: Path) -> None:
    opts = build(tmp_path, environ={"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "192.168.1"})
    assert any("NO_PROXY: entry 192.168.1 never matches" in w for w in opts.warnings)


# -- the route in Options: credentials, TLS to the proxy (the URL itself: test_proxy_route.py) -----


def test_credentials_never_in_options_repr_or_notices(tmp_path: Path) -> None:
    opts = build(tmp_path, environ={"HTTPS_PROXY": "http://alice:s3cret@proxy:3128"})
    assert "s3cret" not in repr(opts)  # the user name may show, as in Go's URL.Redacted()
    assert "alice" not in " ".join(opts.notices) and "s3cret" not in " ".join(opts.notices)
    assert "s3cret" not in "\n".join(explain_egress(opts))


def test_https_proxy_gets_a_verifying_context_with_the_extra_cas(tmp_path: Path) -> None:
    ca = trustme.CA(organization_name="Corp Root")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem.bytes())
    opts = build(tmp_path, environ={"HTTPS_PROXY": "https://proxy:3129"}, custom_ca_trust_certificates=str(ca_file))
    route = opts.upstream.proxy
    assert route is not None and route.ssl_context is not None
    ctx = route.ssl_context
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname and not ctx.hostname_checks_common_name
    assert any(dict(x[0] for x in c).get("organizationName") == "Corp Root" for c in ca_subjects(ctx))
    assert opts.upstream.proxy_trusted == f"the system trust store and 1 custom CA(s) from {ca_file}"
    plain = build(tmp_path, environ={"HTTPS_PROXY": "http://proxy:3128"}).upstream.proxy
    assert plain is not None and plain.ssl_context is None


# -- custom CA trust for the API server -----------------------------------------------------------


def _ca_pem(common_name: str, *, days: int = 30, ca: bool = True) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=60))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_extra_cas_join_the_kubeconfig_ca(tmp_path: Path) -> None:
    cluster_ca = _ca_pem("cluster-ca")
    ca_file = tmp_path / "corp.pem"
    ca_file.write_bytes(_ca_pem("corp-a") + b"\n" + _ca_pem("corp-b"))
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n"
        "    server: https://10.1.2.3:6443\n"
        f"    certificate-authority-data: {base64.b64encode(cluster_ca).decode()}\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user:\n    token: t\n"
    )
    opts = build(tmp_path, kubeconfig=str(path), custom_ca_trust_certificates=str(ca_file))
    ctx = opts.upstream.ssl_context
    assert ctx is not None
    names = sorted(dict(x[0] for x in c)["commonName"] for c in ca_subjects(ctx))
    assert names == ["cluster-ca", "corp-a", "corp-b"]  # and not the system store
    assert opts.upstream.trusted == (
        f"clusters[k].cluster.certificate-authority-data and 2 custom CA(s) from {ca_file}"
    )
    assert opts.notices == (
        f"trusting 2 extra CA certificate(s) for the API server and https:// proxies, from {ca_file}",
    )


def test_extra_cas_join_the_system_store_without_a_kubeconfig_ca(tmp_path: Path) -> None:
    ca_file = tmp_path / "corp.pem"
    ca_file.write_bytes(_ca_pem("corp-a"))
    opts = build(tmp_path, custom_ca_trust_certificates=str(ca_file))
    ctx = opts.upstream.ssl_context
    assert ctx is not None
    assert "corp-a" in {dict(x[0] for x in c).get("commonName") for c in ca_subjects(ctx)}
    assert opts.upstream.trusted == f"the system trust store and 1 custom CA(s) from {ca_file}"


def test_trust_warnings_and_trusted_ca_from_the_proxy_config(tmp_path: Path) -> None:
    ca_file = tmp_path / "corp.pem"
    ca_file.write_bytes(_ca_pem("old", days=-1) + _ca_pem("leaf", ca=False))
    config = proxy_config(
        tmp_path, httpProxy="http://p:3128", trustedCa=base64.b64encode(_ca_pem("from-json")).decode()
    )
    opts = build(tmp_path, custom_ca_trust_certificates=str(ca_file), http_proxy_config=config)
    assert len(opts.egress.trust.certificates) == 3
    assert any("CN=old expired" in w for w in opts.warnings)
    assert any("CN=leaf is not a CA certificate" in w for w in opts.warnings)
    assert opts.egress.trust.origins[-1] == f"{config} trustedCa block 1"


def test_missing_ca_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read --custom-ca-trust-certificates file"):
        build(tmp_path, custom_ca_trust_certificates="nope.pem")
    with pytest.raises(ConfigError, match="cannot read --http-proxy-config file"):
        build(tmp_path, http_proxy_config="nope.json")
