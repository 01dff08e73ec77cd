"""kproxy.policy.tls_failure: the wording of a refused certificate (unknown authority, wrong
name, expired), with and without the peer's certificate."""

from __future__ import annotations

import ssl

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kproxy.policy.tls_failure import describe_verify_failure


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


def test_tls_failure_wording() -> None:
    ca = trustme.CA()
    der = x509.load_pem_x509_certificate(ca.issue_cert("api.example").cert_chain_pems[0].bytes()).public_bytes(
        serialization.Encoding.DER
    )
    unknown = describe_verify_failure(
        "the API server X",
        "api.example",
        _verify_error(20, "unable to get local issuer certificate"),
        der,
        trusted="the system trust store",
    )
    assert unknown.startswith(
        "cannot verify the TLS certificate of the API server X: x509: certificate signed by "
        "unknown authority (issued by "
    )
    assert "trusted: the system trust store" in unknown and "--custom-ca-trust-certificates" in unknown
    mismatch = describe_verify_failure(
        "the API server X",
        "other",
        _verify_error(62, "Hostname mismatch"),
        der,
        trusted="",
        name_hint="set tls-server-name",
    )
    assert mismatch.endswith("x509: certificate is valid for api.example, not other; set tls-server-name")
    # Without the peer certificate (it could not be fetched again) the reason is still there.
    assert (
        describe_verify_failure("the proxy Y", "y", _verify_error(62, "Hostname mismatch"), None, trusted="")
        == "cannot verify the TLS certificate of the proxy Y: the certificate is not valid for y (Hostname mismatch)"
    )
    expired = describe_verify_failure("Z", "z", _verify_error(10, "certificate has expired"), der, trusted="")
    assert "x509: certificate has expired (valid until " in expired
