"""kproxy.cli.explain: the --explain-egress text for an httpProxyConfig file and for a
kubeconfig proxy-url (Options built as in tests/config/test_egress_settings.py)."""

from __future__ import annotations

from pathlib import Path

from kproxy.cli.explain import explain_egress
from tests.config.test_egress_settings import build, proxy_config, write_kubeconfig


def test_explain_for_an_http_proxy_config(tmp_path: Path) -> None:
    config = proxy_config(
        tmp_path, httpProxy="http://u:pw@aks:3128", httpsProxy="https://aks:3129", noProxy=[".svc", "10.0.0.0/8"]
    )
    kubeconfig = write_kubeconfig(tmp_path, "https://api.example.com:443")
    opts = build(tmp_path, kubeconfig=str(kubeconfig), http_proxy_config=config)
    lines = explain_egress(opts, ["http://10.9.8.7/", "https://kubernetes.default.svc/", "not a url\x00"])
    assert lines == [
        f"proxy settings: --http-proxy-config {config} (the kubeconfig proxy-url and the environment are not used)",
        "  httpProxy    http://u:xxxxx@aks:3128",
        "  httpsProxy   https://aks:3129",
        "  noProxy      10.0.0.0/8, .svc",
        "API server https://api.example.com:443",
        f"  proxy https://aks:3129 from httpsProxy in {config} (no noProxy entry matches api.example.com)",
        "  TLS: server name api.example.com; trusted: the system trust store",
        "  TLS to the proxy https://aks:3129: server name aks; trusted: the system trust store",
        "http://10.9.8.7/",
        f"  direct: noProxy entry 10.0.0.0/8 in {config} matches 10.9.8.7",
        "https://kubernetes.default.svc/",
        f"  direct: noProxy entry .svc in {config} matches kubernetes.default.svc",
        "not a url\x00",
        "  error: 'not a url\\x00' is not a valid URL: invalid control character in URL",
    ]


def test_explain_for_a_proxy_url(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path, proxy_url="http://gw:8080")
    lines = explain_egress(build(tmp_path, kubeconfig=str(kubeconfig)))
    assert lines[:4] == [
        "proxy settings: the kubeconfig cluster's proxy-url (the environment is not used)",
        "  proxy-url    http://gw:8080",
        "API server https://10.1.2.3:6443",
        "  proxy http://gw:8080 from kubeconfig proxy-url (every request; the environment and NO_PROXY are not used)",
    ]
