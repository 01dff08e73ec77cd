"""kproxy.config.incluster: kproxy in a pod, through Options (the service account directory
is replaced by KPROXY_SERVICE_ACCOUNT_DIR)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.testing import TestPKI
from tests.config.kubeconfig_files import build_options


def test_in_cluster_configuration(tmp_path: Path, pki: TestPKI) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "ca.crt").write_bytes(pki.ca_pem)
    (sa / "namespace").write_text("team-a")
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KPROXY_SERVICE_ACCOUNT_DIR": str(sa),
    }
    opts = build_options(tmp_path, env)
    up = opts.upstream
    assert (up.scheme, up.host, up.port) == ("https", "10.0.0.1", 443)
    assert isinstance(up.auth, credentials.TokenFile)
    assert up.auth.line == b"Authorization: Bearer sa-token\r\n"
    assert up.ssl_context is not None and up.ssl_context.verify_mode == ssl.CERT_REQUIRED
    # --token replaces the service account token; --as still applies.
    up = build_options(tmp_path, env, token="flag-token", as_user="jane").upstream
    assert up.auth is None and up.auth_header == b"Authorization: Bearer flag-token\r\n"
    assert up.impersonation_headers == b"Impersonate-User: jane\r\n"
    # IPv6 service address; a CA that does not load is reported, the system roots are used.
    (sa / "ca.crt").write_text("garbage")
    opts = build_options(tmp_path, {**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert opts.upstream.display == "https://[fd00::1]:443"
    assert any(w.startswith(f"Expected to load root CA config from {sa / 'ca.crt'}") for w in opts.warnings)


@pytest.mark.parametrize("missing", ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "token"])
def test_in_cluster_needs_both_variables_and_the_token(tmp_path: Path, missing: str) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    if missing != "token":
        (sa / "token").write_text("sa-token")
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KPROXY_SERVICE_ACCOUNT_DIR": str(sa),
    }
    env.pop(missing, None)
    with pytest.raises(ConfigError, match="kproxy --demo"):
        build_options(tmp_path, env)
