"""kproxy.config.client_verification: a client certificate is asked for in the handshake and
judged after it (docs/sharing.md §3), with OpenSSL's own verification, in memory."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config import client_verification
from kproxy.config.client_verification import verification_problem
from kproxy.config.flags import Flags
from kproxy.config.serving_tls import serving_tls
from kproxy.testing import CertPair, TestPKI
from tests.certificates import DAY, handshake, issue, name, now


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.create()


def server_context(pki: TestPKI, tmp_path: Path) -> ssl.SSLContext:
    files = pki.write(tmp_path / "pki")
    flags = replace(
        Flags(),
        tls_cert_file=str(files["server.crt"]),
        tls_private_key_file=str(files["server.key"]),
        client_ca_file=str(files["ca.crt"]),
    )
    serving = serving_tls(flags, str(tmp_path), [])
    assert serving is not None
    return serving.first.context


def client(pki: TestPKI, pair: CertPair | None, tls12: bool = False) -> ssl.SSLContext:
    ctx = pki.client_ssl_context(pair)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def test_this_python_judges_after_the_handshake() -> None:
    # CI's CPython with its OpenSSL: the 401 for a bad certificate is what users get.
    assert client_verification._openssl() is not None  # this CPython: the 401 way


@pytest.mark.parametrize("tls12", [False, True])
def test_verdicts(pki: TestPKI, tmp_path: Path, tls12: bool) -> None:
    ctx = server_context(pki, tmp_path)
    other = TestPKI.create()
    cases: list[tuple[CertPair | None, str | None]] = [
        (pki.client, None),
        (issue(pki, name("alice", ("dev",))), None),
        (other.client, "unable to get local issuer certificate"),
        (issue(pki, name("old"), not_before=now() - 9 * DAY, not_after=now() - DAY), "certificate has expired"),
        (issue(pki, name("soon"), not_before=now() + DAY, not_after=now() + 9 * DAY), "certificate is not yet valid"),
        (issue(pki, name("web"), server=True), "unsuitable certificate purpose"),  # serverAuth only
    ]
    for pair, problem in cases:
        server, _ = handshake(ctx, client(pki, pair, tls12))
        assert server.getpeercert(), pair
        assert verification_problem(server) == problem
    server, _ = handshake(ctx, client(pki, None, tls12))
    assert server.getpeercert() is None  # none asked of it: requested, not required


def test_verdicts_of_interleaved_handshakes_stay_apart(pki: TestPKI, tmp_path: Path) -> None:
    ctx = server_context(pki, tmp_path)
    other = TestPKI.create()
    good_server, _ = handshake(ctx, client(pki, pki.client))
    bad_server, _ = handshake(ctx, client(pki, other.client))
    again, _ = handshake(ctx, client(pki, pki.client))
    assert [verification_problem(s) for s in (good_server, bad_server, again)] == [
        None,
        "unable to get local issuer certificate",
        None,
    ]


def test_sessions_are_never_resumed(pki: TestPKI, tmp_path: Path) -> None:
    # A resumed handshake would skip verification and carry no verdict.
    ctx = server_context(pki, tmp_path)
    assert ctx.num_tickets == 0 and ctx.options & ssl.OP_NO_TICKET
    tls12 = client(pki, pki.client, tls12=True)
    _, first = handshake(ctx, tls12)
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ctx.wrap_bio(s_in, s_out, server_side=True)
    resuming = tls12.wrap_bio(c_in, c_out, server_hostname="localhost", session=first.session)
    for _ in range(10):
        for obj in (resuming, server):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert not server.session_reused and verification_problem(server) is None


def test_unjudged_handshakes_fail_closed() -> None:
    judged = client_verification._Judged  # what the contexts' connections are made of
    assert judged.kproxy_verdict == "the certificate was not verified"
    assert verification_problem(object()) is None  # a context verifying in the handshake


def test_without_the_callback_a_bad_certificate_ends_the_handshake(
    pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_verification, "_OPENSSL", None)
    ctx = server_context(pki, tmp_path)
    server, _ = handshake(ctx, client(pki, pki.client))
    assert verification_problem(server) is None and server.getpeercert()
    with pytest.raises(ssl.SSLError):
        handshake(ctx, client(pki, TestPKI.create().client))
