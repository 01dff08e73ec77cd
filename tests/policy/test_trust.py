"""CA trust files (AKS --custom-ca-trust-certificates) and trustedCa, with certificates
made here with ``cryptography`` and ``trustme``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from kproxy.errors import ConfigError
from kproxy.policy.trust import TrustBundle, merge, parse_ca_file, parse_pem, parse_trusted_ca

NOW = datetime(2030, 6, 1, tzinfo=UTC)
SRC = "/etc/kproxy/cas.pem"
_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    name: str,
    *,
    ca: bool | None = True,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
) -> str:
    """A self-signed certificate; ``ca=None`` leaves out basicConstraints."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Corp")]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


ROOT = make_cert("Corp Root CA")
PROXY_CA = make_cert("Proxy CA")
# Where block 2 starts when ROOT is block 1 and one blank line follows it (ECDSA signatures
# vary in length, so the number of PEM lines does too).
L2 = len(ROOT.splitlines()) + 2


def test_valid_bundle() -> None:
    text = f"{ROOT}\n{PROXY_CA}"
    bundle = parse_ca_file(text, SRC, now=NOW)
    assert len(bundle.certificates) == 2
    assert bundle.warnings == ()
    assert bundle.pem == (ROOT + PROXY_CA).encode()
    assert bundle.origins == (f"{SRC} block 1", f"{SRC} block 2")
    lines = bundle.describe()
    assert lines[0].startswith("O=Corp,CN=Corp Root CA (expires 2031-06-01 ")
    assert lines[0].endswith(f"UTC; {SRC} block 1)")
    assert "CN=Proxy CA" in lines[1]


@pytest.mark.parametrize(
    "text",
    [
        f"{ROOT}\n{PROXY_CA}",  # the AKS form: one blank line between blocks
        f"\n\n{ROOT}\n\n\n{PROXY_CA}\n\n",  # several blank lines, leading and trailing
        f"{ROOT}{PROXY_CA}",  # no blank line: accepted too
        f"{ROOT}   \n \t\n{PROXY_CA}".replace("\n", "\r\n"),  # CRLF, whitespace-only lines
        "\ufeff" + f"{ROOT}\n{PROXY_CA}",  # a byte-order mark
        "\n".join("    " + line for line in f"{ROOT}\n{PROXY_CA}".splitlines()),  # indented
    ],
)
def test_blank_line_separation(text: str) -> None:
    bundle = parse_ca_file(text, SRC, now=NOW)
    assert [c.subject.rfc4514_string() for c in bundle.certificates] == ["O=Corp,CN=Corp Root CA", "O=Corp,CN=Proxy CA"]


def test_trustme_ca() -> None:
    ca = trustme.CA()
    bundle = parse_ca_file(ca.cert_pem.bytes(), SRC, now=datetime.now(UTC))
    assert bundle.warnings == ()
    assert bundle.pem == ca.cert_pem.bytes()


def test_more_than_ten_is_accepted_with_a_warning() -> None:
    certs = [make_cert(f"CA {i}") for i in range(12)]
    bundle = parse_ca_file("\n".join(certs), SRC, now=NOW)
    assert len(bundle.certificates) == 12
    assert bundle.warnings == (f"{SRC}: 12 certificates; AKS accepts at most 10 per file (kproxy uses all 12)",)
    assert parse_ca_file("\n".join(certs[:10]), SRC, now=NOW).warnings == ()


def test_duplicate_is_a_warning() -> None:
    bundle = parse_ca_file(f"{ROOT}\n{ROOT}", SRC, now=NOW)
    assert len(bundle.certificates) == 2
    assert bundle.warnings == (f"{SRC}: block 2 (line {L2}): certificate O=Corp,CN=Corp Root CA repeats block 1",)


KEY_PEM = _KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
BROKEN_BODY = ROOT.replace(ROOT.splitlines()[3], "AAAA" * 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"{ROOT}\nhello world\n",
            f"block 2 (line {L2}): not PEM: 'hello world'; expected -----BEGIN CERTIFICATE-----",
        ),
        (f"# Corp root\n{ROOT}", "block 1 (line 1): not PEM: '# Corp root'"),
        (f"{ROOT}\n{KEY_PEM}", f"block 2 (line {L2}): a PEM PRIVATE KEY block, not a CERTIFICATE"),
        (ROOT.replace("CERTIFICATE", "TRUSTED CERTIFICATE"), "block 1 (line 1): a PEM TRUSTED CERTIFICATE block"),
        (f"{ROOT}\n{BROKEN_BODY}", f"block 2 (line {L2}): not a valid certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "block 1 (line 1): not a valid certificate",
        ),
        (
            ROOT.rsplit("-----END", 1)[0],
            "block 1 (line 1): no -----END CERTIFICATE----- line before the end of the file",
        ),
        (
            ROOT.rsplit("-----END", 1)[0] + "\n" + PROXY_CA,
            f"block 1 (line 1): no -----END CERTIFICATE----- line before line {L2 - 2}",
        ),
        ("", "no certificates"),
        ("\n  \n", "no certificates"),
    ],
    ids=[
        "garbage",
        "comment",
        "key",
        "trusted-cert",
        "broken-body",
        "not-der",
        "no-end",
        "no-end-blank",
        "empty",
        "blank",
    ],
)
def test_bad_blocks_are_errors_naming_the_block(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ca_file(text, SRC, now=NOW)
    assert str(info.value).startswith(f"{SRC}: ")
    assert message in str(info.value)


def test_binary_data_is_not_pem() -> None:
    der = x509.load_pem_x509_certificate(ROOT.encode()).public_bytes(Encoding.DER)
    with pytest.raises(ConfigError, match="not PEM text .*openssl x509 -inform der"):
        parse_pem(der, SRC, now=NOW)


@pytest.mark.parametrize(
    ("cert", "warning"),
    [
        (make_cert("Old CA", not_after=NOW - timedelta(days=1)), "certificate O=Corp,CN=Old CA expired on 2030-05-31"),
        (
            make_cert("Future CA", not_before=NOW + timedelta(days=2)),
            "certificate O=Corp,CN=Future CA is not valid until 2030-06-03",
        ),
        (
            make_cert("leaf.example", ca=False),
            "certificate O=Corp,CN=leaf.example is not a CA certificate (basicConstraints CA:FALSE)",
        ),
        (
            make_cert("v1-style", ca=None),
            "certificate O=Corp,CN=v1-style is not a CA certificate (no basicConstraints extension)",
        ),
    ],
)
def test_certificate_warnings(cert: str, warning: str) -> None:
    bundle = parse_ca_file(f"{ROOT}\n{cert}", SRC, now=NOW)
    assert len(bundle.certificates) == 2  # still trusted: warnings only
    assert len(bundle.warnings) == 1
    assert bundle.warnings[0].startswith(f"{SRC}: block 2 (line {L2}): ")
    assert warning in bundle.warnings[0]


def test_naive_now_is_utc() -> None:
    cert = make_cert("Old CA", not_after=NOW - timedelta(days=1))
    assert parse_ca_file(cert, SRC, now=NOW.replace(tzinfo=None)).warnings


def test_trusted_ca_base64() -> None:
    value = base64.b64encode(f"{ROOT}\n{PROXY_CA}".encode()).decode()
    bundle = parse_trusted_ca(value, "/etc/aks.json", now=NOW)
    assert len(bundle.certificates) == 2
    assert bundle.origins[0] == "/etc/aks.json trustedCa block 1"
    wrapped = "\n".join(value[i : i + 76] for i in range(0, len(value), 76))  # `base64` without -w0
    assert parse_trusted_ca(wrapped, "/etc/aks.json", now=NOW).pem == bundle.pem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not base64!", "/etc/aks.json: trustedCa 'not base64!' is not valid base64"),
        ("QUJ", "is not valid base64 (Incorrect padding)"),
        (base64.b64encode(b"hello").decode(), "/etc/aks.json trustedCa: block 1 (line 1): not PEM: 'hello'"),
        (base64.b64encode(KEY_PEM.encode()).decode(), "a PEM PRIVATE KEY block, not a CERTIFICATE"),
        (base64.b64encode(b"\xff\xfe").decode(), "/etc/aks.json trustedCa: not PEM text"),
    ],
)
def test_trusted_ca_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_trusted_ca(value, "/etc/aks.json", now=NOW)
    assert message in str(info.value)


def test_merge() -> None:
    file_bundle = parse_ca_file(ROOT, SRC, now=NOW)
    old = make_cert("Old CA", not_after=NOW - timedelta(days=1))
    trusted = parse_trusted_ca(base64.b64encode(old.encode()).decode(), "/etc/aks.json", now=NOW)
    both = merge(file_bundle, trusted)
    assert both.pem == file_bundle.pem + trusted.pem
    assert both.origins == (f"{SRC} block 1", "/etc/aks.json trustedCa block 1")
    assert len(both.warnings) == 1 and len(both.describe()) == 2
    assert merge() == TrustBundle()
