"""kproxy.config.upstream_tls: the CA and client certificate read and named, the first
context built, rotation set up only for files; through Options, fields named in errors."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from kproxy.config.kubeconfig_loading import Loaded
from kproxy.config.upstream_tls import upstream_tls
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig import Cluster, User
from kproxy.testing import TestPKI
from tests.config.kubeconfig_files import SERVER, build, write_kubeconfig


def loaded(cluster: Cluster, user: User) -> Loaded:
    return Loaded("c", "k", "u", "default", cluster, user)


def test_plain_http_has_no_tls() -> None:
    tls = upstream_tls(loaded(Cluster(server="http://h"), User(client_certificate_data=b"x")), "http", b"")
    assert tls.context is None and tls.source is None and tls.build is None
    assert not tls.client_certificate


@pytest.mark.parametrize(
    ("where", "ca_field"),
    [
        ("data", "clusters[k].cluster.certificate-authority-data"),
        ("file", "clusters[k].cluster.certificate-authority ({path})"),
        ("none", ""),  # the system trust store
    ],
)
def test_where_the_ca_came_from(tmp_path: Path, pki: TestPKI, where: str, ca_field: str) -> None:
    path = tmp_path / "ca.crt"
    path.write_bytes(pki.ca_pem)
    cluster = {
        "data": Cluster(server=SERVER, certificate_authority_data=pki.ca_pem),
        "file": Cluster(server=SERVER, certificate_authority=str(path)),
        "none": Cluster(server=SERVER),
    }[where]
    tls = upstream_tls(loaded(cluster, User()), "https", b"")
    assert tls.ca_field == ca_field.format(path=path)
    assert tls.ca_pem == (None if where == "none" else pki.ca_pem)
    assert tls.context is not None and tls.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("cert", "key", "rotates"),
    [
        ("data", "data", False),  # inline: nothing to watch
        ("file", "file", True),
        ("file", "data", True),
        ("data", "file", True),
        ("none", "none", False),
    ],
)
def test_client_certificate_rotates_only_from_files(
    tmp_path: Path, pki: TestPKI, cert: str, key: str, rotates: bool
) -> None:
    (tmp_path / "c.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "c.key").write_bytes(pki.client.key_pem)
    user = User(
        client_certificate_data=pki.client.cert_pem if cert == "data" else None,
        client_certificate=str(tmp_path / "c.crt") if cert == "file" else None,
        client_key_data=pki.client.key_pem if key == "data" else None,
        client_key=str(tmp_path / "c.key") if key == "file" else None,
    )
    tls = upstream_tls(loaded(Cluster(server=SERVER, certificate_authority_data=pki.ca_pem), user), "https", b"")
    assert tls.client_certificate is (cert != "none")
    assert isinstance(tls.source, credentials.CertFiles) is rotates
    if rotates:
        assert tls.source is not None and tls.build is not None


def test_client_certificate_from_kubeconfig(tmp_path: Path) -> None:
    pki = TestPKI.create()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    path = write_kubeconfig(
        tmp_path,
        f"    client-certificate-data: {b64(pki.client.cert_pem)}\n    client-key-data: {b64(pki.client.key_pem)}\n",
        f"    certificate-authority-data: {b64(pki.ca_pem)}\n",
    )
    opts = build(tmp_path, kubeconfig=str(path))
    assert opts.upstream.ssl_context is not None
    assert opts.upstream.auth_header == b""


def test_key_that_does_not_match_names_the_fields(tmp_path: Path) -> None:
    pki = TestPKI.create()
    other = TestPKI.create()
    (tmp_path / "c.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "c.key").write_bytes(other.client.key_pem)
    path = write_kubeconfig(
        tmp_path, "    client-certificate: c.crt\n    client-key: c.key\n", "    insecure-skip-tls-verify: true\n"
    )
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    message = str(info.value)
    assert "users[u].user.client-key" in message and "does not match" in message
    assert "PRIVATE KEY" not in message


def test_bad_ca_data_names_the_field(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path,
        "    token: abc\n",
        f"    certificate-authority-data: {base64.b64encode(b'not a certificate').decode()}\n",
    )
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    assert "clusters[k].cluster.certificate-authority-data" in str(info.value)


def test_unreadable_ca_file(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "    token: abc\n", "    certificate-authority: missing.crt\n")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, kubeconfig=str(path))
    assert str(tmp_path / "missing.crt") in str(info.value)


def test_strict_x509_is_off(tmp_path: Path) -> None:
    import ssl

    opts = build(tmp_path, server=SERVER, insecure_skip_tls_verify=True)
    ctx = opts.upstream.ssl_context
    assert ctx is not None
    assert not ctx.verify_flags & getattr(ssl, "VERIFY_X509_STRICT", 0x20)
