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
