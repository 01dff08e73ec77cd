"""Go's names for TLS versions and cipher suites, as kube-rbac-proxy's flags take them, in OpenSSL's words.

In: the values of ``--tls-min-version`` (``VersionTLS12``) and ``--tls-cipher-suites``
(``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,...``). Out: the minimum version as a
:class:`TLSVersionName`, and the OpenSSL cipher names for TLS 1.2 (``ECDHE-RSA-AES128-GCM-SHA256``),
or a ``ValueError`` whose message names the bad value and what would be right.

The names are Go's ``crypto/tls`` constants, as Kubernetes' ``cliflag.TLSCipherSuites`` accepts
them (the two legacy ChaCha20 spellings without ``_SHA256`` included); the OpenSSL name of
each is the same suite by its IANA number (``docs/sharing.md`` §1). TLS 1.3 suites are named
too, and, as in Go, are always on and not configurable: naming them changes nothing.
TLS 1.0 and 1.1 are refused: OpenSSL 3 does not negotiate them at its default security
level, so a flag asking for them would be a promise kproxy cannot keep.

No I/O: whether this OpenSSL build still has a suite (RC4, 3DES) is asked by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CIPHER_SUITES", "TLS13_SUITES", "TLSVersionName", "cipher_suites", "min_version"]

# Go's crypto/tls name → OpenSSL's name for the same suite (TLS 1.2 and below).
CIPHER_SUITES: dict[str, str] = {
    # Go's CipherSuites(): the secure ones.
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",  # Go's legacy spelling
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",  # Go's legacy spelling
    # Go's InsecureCipherSuites(): accepted by Kubernetes' flag, so accepted here.
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
}
# TLS 1.3's suites: always on, in Go and in OpenSSL as Python configures it.
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})

_VERSIONS = {"VersionTLS12": (1, 2), "VersionTLS13": (1, 3)}
_REFUSED_VERSIONS = {"VersionTLS10": "TLS 1.0", "VersionTLS11": "TLS 1.1"}


@dataclass(frozen=True, slots=True)
class TLSVersionName:
    """A minimum TLS version: Go's name and (major, minor)."""

    name: str
    version: tuple[int, int]

    @property
    def tls13_only(self) -> bool:
        return self.version >= (1, 3)


def min_version(value: str) -> TLSVersionName:
    """``--tls-min-version``: Go's constant name. Raises ValueError."""
    name = value.strip()
    if name in _VERSIONS:
        return TLSVersionName(name, _VERSIONS[name])
    if name in _REFUSED_VERSIONS:
        raise ValueError(
            f"--tls-min-version {name}: {_REFUSED_VERSIONS[name]} is not offered (OpenSSL 3 refuses it at its "
            "default security level); use VersionTLS12 or VersionTLS13"
        )
    raise ValueError(f"--tls-min-version {value!r}: unknown version; use VersionTLS12 (the default) or VersionTLS13")


def cipher_suites(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--tls-cipher-suites`` (each value comma-separated, the flag repeatable) → OpenSSL's
    names for the TLS 1.2 suites among them, in order, without repeats. TLS 1.3 names are
    accepted and give nothing. Raises ValueError naming the first unknown name."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            if name in TLS13_SUITES:
                continue
            openssl = CIPHER_SUITES.get(name)
            if openssl is None:
                raise ValueError(
                    f"--tls-cipher-suites {name!r}: unknown cipher suite; use Go's names, "
                    "e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
                )
            if openssl not in out:
                out.append(openssl)
    return tuple(out)
