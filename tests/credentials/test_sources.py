"""kproxy.credentials.sources: token and certificate files that change on disk, and
client-go's impersonation headers. Which credential Options chooses:
tests/config/test_upstream_auth.py."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest
import trustme

from kproxy.credentials import sources as credentials
from kproxy.credentials.resumption import ResumingContext
from kproxy.errors import ConfigError
from kproxy.testing import TestPKI
from tests.certificates import ca_subjects


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


# --------------------------------------------------------------------------- files


async def test_token_file_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    source = credentials.TokenFile(str(path), "first", "tokenFile")
    assert source.line == b"Authorization: Bearer first\r\n"
    assert 45 < source.deadline - time.monotonic() <= 50  # client-go: a minute, 10 s leeway
    path.write_text("second")
    assert await source.fresh() == b"Authorization: Bearer first\r\n"  # not yet due
    source.deadline = 0.0
    assert await source.fresh() == b"Authorization: Bearer second\r\n"
    # A 401 re-reads at once, and says whether the token changed.
    path.write_text("third")
    assert await source.after_401(b"Authorization: Bearer second\r\n", time.monotonic()) is True
    assert source.line == b"Authorization: Bearer third\r\n"
    assert await source.after_401(source.line, time.monotonic()) is False


async def test_token_file_errors_keep_the_last_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token"
    source = credentials.TokenFile(str(path), "kept-secret", f"tokenFile ({path})")
    for content in (None, "", "two\nlines\x00"):
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content)
        source.deadline = 0.0
        assert await source.fresh() == b"Authorization: Bearer kept-secret\r\n"
    assert "Unable to rotate token" in caplog.text and str(path) in caplog.text
    assert "kept-secret" not in caplog.text and "lines" not in caplog.text


async def test_certificate_files_replaced_on_disk(tmp_path: Path, pki: TestPKI) -> None:
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    cert.write_bytes(pki.client.cert_pem)
    key.write_bytes(pki.client.key_pem)
    loads: list[bytes] = []

    def build(c: bytes, k: bytes) -> ssl.SSLContext:
        loads.append(c)
        return credentials.tls_context(
            ca_pem=None,
            ca_field="",
            insecure=True,
            cert_pem=c,
            key_pem=k,
            cert_field="client-certificate",
            key_field="client-key",
        )

    first = build(pki.client.cert_pem, pki.client.key_pem)
    source = credentials.CertFiles(
        build, (str(cert), pki.client.cert_pem), (str(key), pki.client.key_pem), first, "client-certificate"
    )
    assert await source.context() is first and source.generation == 0
    other = pki.issue_client("rotated")
    cert.write_bytes(other.cert_pem)  # half-way: new certificate, old key
    assert await source.context() is first and source.generation == 0
    key.write_bytes(other.key_pem)
    second = await source.context()
    assert second is not first and source.generation == 1 and loads[-1] == other.cert_pem
    os.utime(cert)  # touched, unchanged: nothing reloads
    count = len(loads)
    source.check(time.monotonic())
    assert len(loads) == count and source.generation == 1
    assert source.check_at > time.monotonic() + 50


# --------------------------------------------------------------------------- TLS


def _names(ctx: ssl.SSLContext) -> list[str]:
    return sorted(v for subject in ca_subjects(ctx) for rdn in subject for k, v in rdn if k == "organizationName")


@pytest.mark.parametrize(
    ("kubeconfig_ca", "insecure", "trusted", "system_store_loads"),
    [
        (True, False, ["kubeconfig CA"], 0),  # client-go: the kubeconfig's CA alone
        (False, False, ["system root"], 1),  # no CA given: the system's
        (False, True, [], 0),  # nothing is verified: no trust store at all
    ],
)
def test_the_system_trust_store_is_loaded_only_where_it_is_the_anchor(
    kubeconfig_ca: bool,
    insecure: bool,
    trusted: list[str],
    system_store_loads: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The "system" store: a file of our own, where OpenSSL looks first (SSL_CERT_FILE).
    system = tmp_path / "system.pem"
    system.write_bytes(trustme.CA(organization_name="system root").cert_pem.bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(system))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    loads: list[ssl.Purpose] = []
    original = ResumingContext.load_default_certs

    def counted(self: ResumingContext, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        loads.append(purpose)
        original(self, purpose)

    monkeypatch.setattr(ResumingContext, "load_default_certs", counted)
    ca = trustme.CA(organization_name="kubeconfig CA").cert_pem.bytes() if kubeconfig_ca else None
    ctx = credentials.tls_context(
        ca_pem=ca, ca_field="ca", insecure=insecure, cert_pem=None, key_pem=None, cert_field="c", key_field="k"
    )
    # Loading the store is ~25 ms of start-up: never done for a context that does not use it.
    assert (_names(ctx), len(loads)) == (trusted, system_store_loads)
    assert isinstance(ctx, ResumingContext) and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert not ctx.hostname_checks_common_name and not ctx.verify_flags & getattr(ssl, "VERIFY_X509_STRICT", 0)
    assert (ctx.verify_mode, ctx.check_hostname) == ((ssl.CERT_NONE, False) if insecure else (ssl.CERT_REQUIRED, True))


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((("scopes", ("view", "edit")),), b"Impersonate-Extra-Scopes: view\r\nImpersonate-Extra-Scopes: edit\r\n"),
        ((("example.com/reason", ("audit",)),), b"Impersonate-Extra-Example.com%2freason: audit\r\n"),
        ((("100%", ("x",)),), b"Impersonate-Extra-100%25: x\r\n"),
        ((("a b", ("y",)),), b"Impersonate-Extra-A%20b: y\r\n"),
        ((("ключ", ("z",)),), b"Impersonate-Extra-%d0%ba%d0%bb%d1%8e%d1%87: z\r\n"),
    ],
)
def test_impersonation_extra_keys_are_escaped_like_client_go(
    extra: tuple[tuple[str, tuple[str, ...]], ...], expected: bytes
) -> None:
    headers = credentials.impersonation_headers("jane", "", (), extra)
    assert headers == b"Impersonate-User: jane\r\n" + expected


def test_impersonation_headers_order_and_refusals() -> None:
    assert credentials.impersonation_headers("jane", "42", ("a", "b"), ()) == (
        b"Impersonate-User: jane\r\nImpersonate-Uid: 42\r\nImpersonate-Group: a\r\nImpersonate-Group: b\r\n"
    )
    assert credentials.impersonation_headers("", "42", ("a",), ()) == b""
    with pytest.raises(ConfigError):
        credentials.impersonation_headers("jane\r\nX-Evil: 1", "", (), ())
