"""kproxy.config.serving_tls: the TLS listener's flags become a server context, or one error
line naming the flag and the file (never a byte of the file); handshakes in memory check
what the context does."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.flags import Flags
from kproxy.config.serving_tls import ServingTLS, serving_tls
from kproxy.errors import ConfigError
from kproxy.testing import TestPKI
from tests.certificates import DAY, encrypted, handshake, issue, name, now


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


@pytest.fixture
def files(pki: TestPKI, tmp_path: Path) -> dict[str, Path]:
    return pki.write(tmp_path / "pki")


def build(tmp_path: Path, warnings: list[str] | None = None, /, **kw: object) -> ServingTLS | None:
    return serving_tls(replace(Flags(), **kw), str(tmp_path), [] if warnings is None else warnings)  # type: ignore[arg-type]


def tls(files: dict[str, Path], **kw: object) -> dict[str, object]:
    return {"tls_cert_file": str(files["server.crt"]), "tls_private_key_file": str(files["server.key"]), **kw}


def test_no_tls_without_the_flags(tmp_path: Path) -> None:
    assert build(tmp_path) is None


def test_a_serving_context_from_the_pair(pki: TestPKI, files: dict[str, Path], tmp_path: Path) -> None:
    serving = build(tmp_path, **tls(files))
    assert serving is not None and serving.files == (str(files["server.crt"]), str(files["server.key"]))
    assert serving.client_ca_file == "" and serving.describe().startswith("serving HTTPS with --tls-cert-file")
    server, client = handshake(serving.first.context, pki.client_ssl_context())
    assert server.version() == "TLSv1.3" and server.getpeercert() is None
    # kproxy speaks HTTP/1.1: ALPN says so, and never h2.
    client_ctx = pki.client_ssl_context()
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    assert handshake(serving.first.context, client_ctx)[1].selected_alpn_protocol() == "http/1.1"


def test_relative_paths_are_resolved_against_the_working_directory(pki: TestPKI, tmp_path: Path) -> None:
    pki.write(tmp_path / "d")
    serving = build(tmp_path, tls_cert_file="d/server.crt", tls_private_key_file="d/server.key")
    assert serving is not None and serving.cert_file == str(tmp_path / "d/server.crt")


def test_the_minimum_version_is_enforced(pki: TestPKI, files: dict[str, Path], tmp_path: Path) -> None:
    serving = build(tmp_path, **tls(files, tls_min_version="VersionTLS13"))
    assert serving is not None and "(TLS 1.3)" in serving.describe()
    old = pki.client_ssl_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(serving.first.context, old)
    default = build(tmp_path, **tls(files))
    assert default is not None and handshake(default.first.context, old)[0].version() == "TLSv1.2"


def test_cipher_suites_limit_tls_12(pki: TestPKI, files: dict[str, Path], tmp_path: Path) -> None:
    serving = build(tmp_path, **tls(files, tls_cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",)))
    assert serving is not None and serving.ciphers == ("ECDHE-ECDSA-AES256-GCM-SHA384",)
    client = pki.client_ssl_context()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    cipher = handshake(serving.first.context, client)[0].cipher()
    assert cipher is not None and cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        handshake(serving.first.context, client)


def test_suites_without_effect_are_a_warning(files: dict[str, Path], tmp_path: Path) -> None:
    warnings: list[str] = []
    build(
        tmp_path,
        warnings,
        **tls(files, tls_min_version="VersionTLS13", tls_cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",)),
    )
    assert warnings == ["--tls-cipher-suites has no effect with --tls-min-version VersionTLS13: TLS 1.3's are fixed"]


def test_an_expired_serving_certificate_is_a_warning(pki: TestPKI, tmp_path: Path) -> None:
    old = issue(pki, name("kproxy"), server=True, not_before=now() - 10 * DAY, not_after=now() - DAY)
    (tmp_path / "old.crt").write_bytes(old.cert_pem)
    (tmp_path / "old.key").write_bytes(old.key_pem)
    warnings: list[str] = []
    build(tmp_path, warnings, tls_cert_file="old.crt", tls_private_key_file="old.key")
    assert len(warnings) == 1 and warnings[0].startswith(
        f"--tls-cert-file {tmp_path}/old.crt: the certificate expired on"
    )


PAIR = {"tls_cert_file": "a.crt", "tls_private_key_file": "a.key"}
TOGETHER = "--tls-cert-file and --tls-private-key-file go together"
LISTENER = "applies to kproxy's TLS listener: give --tls-cert-file and --tls-private-key-file too"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tls_cert_file": "a.crt"}, f"--tls-private-key-file is missing: {TOGETHER}"),
        ({"tls_private_key_file": "a.key"}, f"--tls-cert-file is missing: {TOGETHER}"),
        ({"client_ca_file": "ca.crt"}, f"--client-ca-file {LISTENER}"),
        ({"tls_min_version": "VersionTLS13"}, f"--tls-min-version {LISTENER}"),
        ({"tls_cipher_suites": ("TLS_AES_128_GCM_SHA256",)}, f"--tls-cipher-suites {LISTENER}"),
        ({**PAIR, "unix_socket": "/tmp/k.sock"}, "--tls-cert-file cannot be used with --unix-socket"),
        ({**PAIR, "tls_min_version": "VersionTLS14"}, "--tls-min-version 'VersionTLS14': unknown version"),
        ({**PAIR, "tls_min_version": "VersionTLS10"}, "--tls-min-version VersionTLS10: TLS 1.0 is not offered"),
        ({**PAIR, "tls_cipher_suites": ("TLS_FOO",)}, "--tls-cipher-suites 'TLS_FOO': unknown cipher suite"),
        (
            {**PAIR, "tls_cipher_suites": ("TLS_RSA_WITH_RC4_128_SHA",)},
            "--tls-cipher-suites: RC4-SHA (OpenSSL's name) is not available in OpenSSL",
        ),
        (
            {**PAIR, "tls_cipher_suites": ("TLS_AES_128_GCM_SHA256",)},
            "--tls-cipher-suites names only TLS 1.3 suites",
        ),
    ],
)
def test_combinations_that_cannot_work(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, **kw)
    assert str(caught.value).startswith(message)


def bad_file_error(tmp_path: Path, files: dict[str, Path], **kw: object) -> str:
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, **tls(files, **kw))
    text = str(caught.value)
    assert "\n" not in text and "BEGIN" not in text.replace("-----BEGIN CERTIFICATE-----", "").replace(
        "-----BEGIN PRIVATE KEY-----", ""
    )
    return text


def test_bad_files_are_named_with_their_flag(pki: TestPKI, files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    assert bad_file_error(tmp_path, files, tls_cert_file=str(missing)) == (
        f"cannot read --tls-cert-file {missing}: No such file or directory"
    )
    assert bad_file_error(tmp_path, files, tls_private_key_file=str(tmp_path)) == (
        f"cannot read --tls-private-key-file {tmp_path}: Is a directory"
    )
    # The key in the certificate's place, and the other way round.
    assert bad_file_error(tmp_path, files, tls_cert_file=str(files["server.key"])) == (
        f"--tls-cert-file {files['server.key']}: no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)"
    )
    assert bad_file_error(tmp_path, files, tls_private_key_file=str(files["server.crt"])) == (
        f"--tls-private-key-file {files['server.crt']}: no PEM private key in the file "
        "(expected -----BEGIN PRIVATE KEY-----)"
    )
    locked = tmp_path / "locked.key"
    locked.write_bytes(encrypted(pki.server.key_pem))
    assert bad_file_error(tmp_path, files, tls_private_key_file=str(locked)).startswith(
        f"--tls-private-key-file {locked}: the key is encrypted; kproxy needs it unencrypted"
    )
    assert bad_file_error(tmp_path, files, tls_private_key_file=str(files["client.key"])) == (
        f"--tls-private-key-file {files['client.key']} does not match the certificate in "
        f"--tls-cert-file {files['server.crt']}"
    )
    assert bad_file_error(tmp_path, files, client_ca_file=str(files["server.key"])) == (
        f"--client-ca-file {files['server.key']}: no PEM certificates in the file "
        "(expected -----BEGIN CERTIFICATE----- blocks)"
    )
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiIsImtpZCI6InNlY3JldC10b2tlbiJ9\n")
    assert "eyJ" not in bad_file_error(tmp_path, files, client_ca_file=str(token))


def test_load_reads_the_files_again(pki: TestPKI, files: dict[str, Path], tmp_path: Path) -> None:
    serving = build(tmp_path, **tls(files))
    assert serving is not None
    same = serving.load()
    assert same.fingerprint == serving.first.fingerprint and same.context is not serving.first.context
    other = TestPKI.create()
    files["server.crt"].write_bytes(other.server.cert_pem)
    with pytest.raises(ConfigError, match="does not match the certificate"):
        serving.load()  # a new certificate with the old key: the caller keeps what it has
    files["server.key"].write_bytes(other.server.key_pem)
    assert serving.load().fingerprint != serving.first.fingerprint
