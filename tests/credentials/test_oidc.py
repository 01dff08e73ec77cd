"""kproxy.credentials.oidc: refreshes against a fake issuer (persisted tokens, the form
fallback, failures, an unreachable issuer, no refresh token) and JWT expiry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kproxy.config.options import Options
from kproxy.credentials import oidc
from kproxy.errors import UpstreamError
from kproxy.testing.credential_fakes import FakeOIDCIssuer, make_jwt
from kproxy.upstream.outbound import OutboundHTTP
from tests.config.kubeconfig_files import build_options

SERVER = "https://127.0.0.1:6443"


# --------------------------------------------------------------------------- OIDC


def wired_options(tmp_path: Path, **kw: object) -> Options:
    """Options whose credential can reach its issuer, as ProxyServer.start wires it."""
    opts = build_options(tmp_path, **kw)
    if opts.upstream.auth is not None:
        opts.upstream.auth.use_outbound(OutboundHTTP(opts.egress, connect_timeout=5.0))
    return opts


def test_jwt_expiry() -> None:
    assert oidc.jwt_expiry(make_jwt(1234.0)) == 1234.0
    with pytest.raises(ValueError, match="not a valid JWT"):
        oidc.jwt_expiry("opaque-token")
    assert oidc.jwt_expiry("a.e30.c") == 0.0  # {} has no exp: expired


def oidc_kubeconfig(tmp_path: Path, issuer: FakeOIDCIssuer, id_token: str, **extra: str) -> Path:
    config = {
        "idp-issuer-url": issuer.url,
        "client-id": issuer.client_id,
        "id-token": id_token,
        "refresh-token": "refresh-1",
        **extra,
    }
    if issuer.client_secret:
        config["client-secret"] = issuer.client_secret
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "o"}}],
                "users": [{"name": "o", "user": {"auth-provider": {"name": "oidc", "config": config}}}],
            }
        )
    )
    path.chmod(0o600)
    return path


async def test_oidc_refresh_persists_new_tokens(tmp_path: Path) -> None:
    async with FakeOIDCIssuer(client_secret="client-s3cret") as issuer:
        valid = make_jwt(time.time() + 3600)
        opts = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, valid)))
        source = opts.upstream.auth
        assert isinstance(source, oidc.OIDCProvider)
        assert await source.fresh() == f"Authorization: Bearer {valid}\r\n".encode()
        assert issuer.token_requests == 0

        expired = make_jwt(time.time() + 5)  # within client-go's 10 s expiry delta
        path = oidc_kubeconfig(tmp_path, issuer, expired)
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert isinstance(source, oidc.OIDCProvider)
        lines = await asyncio.gather(*(source.fresh() for _ in range(5)))
        assert set(lines) == {f"Authorization: Bearer {issuer.issued[0]}\r\n".encode()}
        assert issuer.token_requests == 1 and issuer.discovery_requests == 1
        written = yaml.safe_load(path.read_text())["users"][0]["user"]["auth-provider"]["config"]
        assert written["id-token"] == issuer.issued[0] and written["refresh-token"] == "refresh-2"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert await source.after_401(lines[0], time.monotonic()) is False  # client-go does not refresh on 401


async def test_oidc_client_credentials_fall_back_to_the_form(tmp_path: Path) -> None:
    async with FakeOIDCIssuer(client_secret="s", basic_auth=False) as issuer:
        path = oidc_kubeconfig(tmp_path, issuer, make_jwt(0))
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert source is not None
        await source.fresh()
        assert issuer.token_requests == 2 and len(issuer.issued) == 1


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (
            lambda i: setattr(
                i, "fail_with", (400, {"error": "invalid_grant", "error_description": "Token is expired"})
            ),
            "answered 400 Bad Request: invalid_grant (Token is expired)",
        ),
        (lambda i: setattr(i, "omit_id_token", True), "token response did not contain an id_token"),
        (lambda i: setattr(i, "refresh_tokens", set()), "invalid_grant (unknown refresh token)"),
    ],
)
async def test_oidc_refresh_failures(tmp_path: Path, setup: Any, needle: str) -> None:
    async with FakeOIDCIssuer(client_secret="client-s3cret") as issuer:
        setup(issuer)
        source = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, make_jwt(0)))).upstream.auth
        assert source is not None
        with pytest.raises(UpstreamError) as info:
            await source.fresh()
        message = info.value.message
        assert "failed to refresh token" in message and needle in message
        assert "users[o].user.auth-provider" in message
        for secret in ("client-s3cret", "refresh-1"):
            assert secret not in message


async def test_oidc_issuer_unreachable(tmp_path: Path) -> None:
    issuer = FakeOIDCIssuer()
    await issuer.start()
    await issuer.stop()
    source = wired_options(tmp_path, kubeconfig=str(oidc_kubeconfig(tmp_path, issuer, make_jwt(0)))).upstream.auth
    assert source is not None
    with pytest.raises(UpstreamError) as info:
        await source.fresh()
    assert f"cannot reach the issuer {issuer.url}" in info.value.message


async def test_oidc_without_refresh_token(tmp_path: Path) -> None:
    async with FakeOIDCIssuer() as issuer:
        path = oidc_kubeconfig(tmp_path, issuer, make_jwt(0))
        doc = yaml.safe_load(path.read_text())
        del doc["users"][0]["user"]["auth-provider"]["config"]["refresh-token"]
        path.write_text(yaml.safe_dump(doc))
        source = wired_options(tmp_path, kubeconfig=str(path)).upstream.auth
        assert source is not None
        with pytest.raises(UpstreamError, match="No valid id-token, and cannot refresh without refresh-token"):
            await source.fresh()
