"""kproxy.config.identity through Options.from_flags: --client-identity checked against the
listener and the kubeconfig user; passthrough builds the upstream without the user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kproxy.errors import ConfigError
from kproxy.testing import TestPKI
from tests.config.kubeconfig_files import EXEC, build_options, kubeconfig_with


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


@pytest.fixture
def tls(pki: TestPKI, tmp_path: Path) -> dict[str, str]:
    files = pki.write(tmp_path / "pki")
    return {"tls_cert_file": str(files["server.crt"]), "tls_private_key_file": str(files["server.key"])}


@pytest.fixture
def with_ca(tls: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**tls, "client_ca_file": str(tmp_path / "pki" / "ca.crt")}


def options(tmp_path: Path, user: dict[str, Any], **kw: object):  # type: ignore[no-untyped-def]
    return build_options(tmp_path, kubeconfig=str(kubeconfig_with(tmp_path, user)), **kw)


def test_proxy_is_the_default_and_changes_nothing(tmp_path: Path) -> None:
    opts = options(tmp_path, {"token": "t"})
    assert opts.client_identity == "proxy" and opts.serving_tls is None
    assert opts.upstream.auth_header == b"Authorization: Bearer t\r\n"
    assert not any("client identity" in n for n in opts.notices)


def test_impersonate_keeps_kproxys_credential(tmp_path: Path, with_ca: dict[str, str]) -> None:
    opts = options(tmp_path, {"token": "t"}, client_identity="impersonate", **with_ca)
    assert opts.client_identity == "impersonate"
    assert opts.upstream.auth_header == b"Authorization: Bearer t\r\n" and opts.upstream.impersonation_headers == b""
    assert opts.notices[-2].startswith("serving HTTPS with --tls-cert-file")
    assert "client certificates required, from --client-ca-file" in opts.notices[-2]
    assert opts.notices[-1] == (
        "client identity: impersonate (kproxy's user users[u].user impersonates each client certificate's CN and O)"
    )


def test_impersonate_through_an_http_server_needs_no_credential_of_kproxys(
    tmp_path: Path, with_ca: dict[str, str]
) -> None:
    # Over http:// kubectl (and kproxy) send no credential at all; what listens there (a
    # proxy adding its own, such as kubectl proxy) decides whom it acts as.
    path = kubeconfig_with(tmp_path, {"token": "t"}, {"server": "http://127.0.0.1:8001"})
    opts = build_options(tmp_path, kubeconfig=str(path), client_identity="impersonate", **with_ca)
    assert opts.client_identity == "impersonate" and opts.upstream.auth_header == b""


def test_passthrough_builds_the_upstream_without_the_user(tmp_path: Path, tls: dict[str, str]) -> None:
    opts = options(tmp_path, {"token": "t", "as": "bob", "exec": EXEC}, client_identity="passthrough", **tls)
    upstream = opts.upstream
    assert (upstream.auth_header, upstream.auth, upstream.impersonation_headers, upstream.tls) == (b"", None, b"", None)
    assert opts.notices[-1] == (
        "client identity: passthrough (kproxy adds no credential: each client's own, or none); "
        "the credentials of users[u].user are not used"
    )


@pytest.mark.parametrize(
    ("user", "kw", "message"),
    [
        ({"token": "t"}, {"client_identity": "impersonated"}, "--client-identity 'impersonated': unknown mode"),
        ({"token": "t"}, {"client_identity": "impersonate"}, "--client-identity impersonate needs --client-ca-file"),
        ({"token": "t"}, {"client_identity": "impersonate", "tls": True}, "--client-identity impersonate needs"),
        (
            {"token": "t"},
            {"client_identity": "impersonate", "ca": True, "as_user": "bob"},
            "--as cannot be used with --client-identity impersonate: the client certificate decides",
        ),
        (
            {"token": "t"},
            {"client_identity": "impersonate", "ca": True, "as_group": ("g",)},
            "--as-group cannot be used with --client-identity impersonate",
        ),
        (
            {"token": "t", "as": "bob"},
            {"client_identity": "impersonate", "ca": True},
            "users[u].user: the user impersonates 'bob' (as), which --client-identity impersonate replaces",
        ),
        (
            {},
            {"client_identity": "impersonate", "ca": True},
            "--client-identity impersonate: kproxy's kubeconfig user (",
        ),
        (
            {},
            {"client_identity": "passthrough", "token": "x"},
            "--token cannot be used with --client-identity passthrough",
        ),
        (
            {},
            {"client_identity": "passthrough", "as_uid": "1"},
            "--as-uid cannot be used with --client-identity passthrough: kproxy adds no credential",
        ),
    ],
)
def test_modes_that_cannot_work_name_the_flags(
    tmp_path: Path,
    tls: dict[str, str],
    with_ca: dict[str, str],
    user: dict[str, Any],
    kw: dict[str, object],
    message: str,
) -> None:
    listener = with_ca if kw.pop("ca", False) else tls if kw.pop("tls", False) else {}
    with pytest.raises(ConfigError) as caught:
        options(tmp_path, user, **listener, **kw)
    assert message in str(caught.value)


def test_exposure_warnings_know_who_can_use_the_port(
    tmp_path: Path, tls: dict[str, str], with_ca: dict[str, str]
) -> None:
    relaxed = {"address": "0.0.0.0", "accept_hosts": ".*"}
    warned = options(tmp_path, {"token": "t"}, **relaxed).warnings
    assert any("anyone who can reach this port can use your cluster credentials" in w for w in warned)
    # Clients must present a certificate from the CA: not "anyone".
    assert options(tmp_path, {"token": "t"}, **relaxed, **with_ca).warnings == ()
    # passthrough lends no credential, but in clear text the clients' own cross the network.
    clear = options(tmp_path, {}, **relaxed, client_identity="passthrough").warnings
    assert clear == (
        "Listening on 0.0.0.0 without --tls-cert-file in --client-identity passthrough mode: clients' own "
        "credentials cross the network unencrypted; serve TLS with --tls-cert-file",
    )
    assert options(tmp_path, {}, **relaxed, client_identity="passthrough", **tls).warnings == ()
