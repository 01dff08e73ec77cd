"""kproxy.policy.tls_names: Go's TLS version and cipher suite names, as kube-rbac-proxy's
flags take them, mapped to OpenSSL's (docs/sharing.md §1)."""

from __future__ import annotations

import pytest

from kproxy.policy.tls_names import CIPHER_SUITES, TLS13_SUITES, cipher_suites, min_version


@pytest.mark.parametrize(
    ("value", "version", "tls13_only"),
    [("VersionTLS12", (1, 2), False), ("VersionTLS13", (1, 3), True), (" VersionTLS13 ", (1, 3), True)],
)
def test_versions_by_gos_names(value: str, version: tuple[int, int], tls13_only: bool) -> None:
    parsed = min_version(value)
    assert (parsed.version, parsed.tls13_only) == (version, tls13_only)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("VersionTLS10", "--tls-min-version VersionTLS10: TLS 1.0 is not offered"),
        ("VersionTLS11", "--tls-min-version VersionTLS11: TLS 1.1 is not offered"),
        ("TLS1.2", "--tls-min-version 'TLS1.2': unknown version; use VersionTLS12 (the default) or VersionTLS13"),
        ("versiontls12", "--tls-min-version 'versiontls12': unknown version"),
        ("", "--tls-min-version '': unknown version"),
    ],
)
def test_unknown_or_refused_versions_name_the_flag_and_the_right_values(value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        min_version(value)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("values", "openssl"),
    [
        ((), ()),
        (("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",), ("ECDHE-RSA-AES128-GCM-SHA256",)),
        (
            ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",),
            ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ),
        # Repeated flags add up; order kept; repeats and the legacy spelling collapse.
        (
            (
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA",
            ),
            ("ECDHE-RSA-CHACHA20-POLY1305", "AES128-SHA"),
        ),
        # TLS 1.3's suites are accepted and, as in Go, change nothing.
        (("TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",), ("ECDHE-RSA-AES128-SHA",)),
        (("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"), ()),
        ((",",), ()),
    ],
)
def test_cipher_suites_by_gos_names(values: tuple[str, ...], openssl: tuple[str, ...]) -> None:
    assert cipher_suites(values) == openssl


@pytest.mark.parametrize(
    "value",
    [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,nope",
        "tls_ecdhe_rsa_with_aes_128_gcm_sha256",
    ],
)
def test_unknown_cipher_suites_are_named(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        cipher_suites((value,))
    bad = [name for name in value.split(",") if name not in CIPHER_SUITES][0]
    assert str(caught.value).startswith(f"--tls-cipher-suites {bad!r}: unknown cipher suite; use Go's names")


def test_every_go_suite_has_one_openssl_name() -> None:
    # Go's crypto/tls CipherSuites() + InsecureCipherSuites() (TLS 1.2 and below), plus the
    # two legacy ChaCha20 spellings: 24 names for 22 suites.
    assert len(CIPHER_SUITES) == 24 and len(set(CIPHER_SUITES.values())) == 22
    assert not TLS13_SUITES & set(CIPHER_SUITES)
