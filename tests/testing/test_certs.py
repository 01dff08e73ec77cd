"""Throw-away certificates of the fake API server (``kproxy.testing.certs``): the files ``TestPKI`` writes.

The TLS handshakes themselves are tested in ``tests/testing/test_fake_apiserver.py``; this
checks the files a kubeconfig points at: names, the private key's mode, and certificates
that a strict X.509 verifier accepts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from kproxy.testing import TestPKI


def test_pki_files(pki: TestPKI, tmp_path: Path) -> None:
    paths = pki.write(tmp_path)
    assert sorted(paths) == ["ca.crt", "client.crt", "client.key", "server.crt", "server.key"]
    assert paths["client.key"].stat().st_mode & 0o777 == 0o600
    assert "key_pem" not in repr(pki.client)
    strict = ssl.create_default_context(cafile=paths["ca.crt"])
    strict.verify_flags |= ssl.VERIFY_X509_STRICT
    strict.load_cert_chain(paths["client.crt"], paths["client.key"])


def test_rsa_keys_for_the_benchmarks(tmp_path: Path) -> None:
    import subprocess

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    made = TestPKI.create(server_names=("127.0.0.1",), key_type="rsa")
    extra = made.issue_client("bench-user", ("system:masters",))
    for pem in (made.ca_pem, made.server.cert_pem, extra.cert_pem):
        key = x509.load_pem_x509_certificate(pem).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    paths = made.write(tmp_path)
    (tmp_path / "extra.crt").write_bytes(extra.cert_pem)
    verified = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", paths["ca.crt"], paths["server.crt"], tmp_path / "extra.crt"],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
