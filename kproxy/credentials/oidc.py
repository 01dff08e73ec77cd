"""The ``oidc`` auth-provider, as client-go's ``plugin/pkg/client/auth/oidc`` runs it.

In: the kubeconfig's ``auth-provider.config`` (``idp-issuer-url``, ``client-id``,
``client-secret``, ``id-token``, ``refresh-token``, ``idp-certificate-authority(-data)``),
and where to write refreshed tokens back. Out: :class:`OIDCProvider`, an
:class:`~kproxy.credentials.sources.AuthSource` sending ``Authorization: Bearer <id-token>``.

Flow: the id-token is used while its JWT ``exp`` is more than 10 s away (client-go's
expiryDelta). Then the token endpoint is found by discovery
(``<issuer>/.well-known/openid-configuration``) and the refresh token is exchanged
(``grant_type=refresh_token``; client credentials first in HTTP Basic, then in the
form, as golang.org/x/oauth2 probes). The new id-token (and refresh token, if the
issuer rotated it) are written back to the kubeconfig file the user came from, as
kubectl does, so kubectl and kproxy keep sharing one login. A 401 from the API server
does not refresh (client-go does not either).

Deviation: kubectl fails the request when the kubeconfig cannot be written; kproxy
logs a warning and keeps the new tokens in memory.

Messages name the issuer and the kubeconfig field; never a token or the client secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from kproxy.credentials.outbound import Outbound
from kproxy.credentials.sources import AuthSource, bearer_line
from kproxy.errors import ConfigError, UpstreamError
from kproxy.log import log
from kproxy.metrics import tally

__all__ = ["EXPIRY_DELTA", "OIDCProvider", "jwt_expiry", "persist_tokens"]

EXPIRY_DELTA = 10.0
_HTTP_TIMEOUT = 30.0
_BODY_LIMIT = 80  # client-go quotes at most this much of an unexpected answer


def jwt_expiry(token: str) -> float:
    """The ``exp`` claim of a JWT (Unix time). Raises ValueError without quoting the token."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("ID Token is not a valid JWT")
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("ID Token is not a valid JWT (its payload does not decode)") from None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return 0.0  # Go decodes a missing exp as the zero time: expired
    return float(int(exp))


class OIDCProvider(AuthSource):
    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        where: str,
        ca_pem: bytes | None,
        persist_to: tuple[str, str] | None,
    ) -> None:
        """``where``: the field path for messages. ``ca_pem``: the issuer's CA (None: the
        system's). ``persist_to``: (kubeconfig file, user name) to write new tokens to."""

        def text(key: str) -> str:
            value = config.get(key, "")
            if not isinstance(value, str):
                raise ConfigError(f"{where}.config.{key}: must be a string")
            return value

        self._issuer = text("idp-issuer-url")
        self._client_id = text("client-id")
        if not self._issuer:
            raise ConfigError(f"{where}: Must provide idp-issuer-url")
        if not self._client_id:
            raise ConfigError(f"{where}: Must provide client-id")
        self._client_secret = text("client-secret")
        self._id_token = text("id-token")
        self._refresh_token = text("refresh-token")
        self._where = where
        self._ca_pem = ca_pem
        self._persist_to = persist_to
        self._running: asyncio.Task[bytes] | None = None
        self._outbound: Outbound | None = None
        self.refreshes = 0
        self.line = b""
        self.deadline = -math.inf
        if self._id_token:
            self._adopt_id_token(self._id_token, check=True)

    def use_outbound(self, outbound: Outbound) -> None:
        self._outbound = outbound

    def _adopt_id_token(self, token: str, *, check: bool) -> None:
        try:
            expiry = jwt_expiry(token)
            line = bearer_line(token, f"{self._where} id-token")
        except ValueError as exc:
            if check:
                raise ConfigError(f"{self._where}.config.id-token: {exc}") from None
            raise UpstreamError(f"oidc auth-provider ({self._where}): the issuer's new {exc}") from None
        self._id_token = token
        self.line = line
        # Usable while now + expiryDelta is before exp; as a monotonic deadline.
        self.deadline = time.monotonic() + (expiry - EXPIRY_DELTA - time.time())

    async def fresh(self) -> bytes:
        if time.monotonic() < self.deadline:
            return self.line
        task = self._running
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh())
            self._running = task
            task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[bytes]) -> None:
        self._running = None
        if not task.cancelled():
            tally.refresh("oidc", task.exception() is None)

    async def _refresh(self) -> bytes:
        if not self._refresh_token:
            raise UpstreamError(
                f"oidc auth-provider ({self._where}): No valid id-token, and cannot refresh without refresh-token"
            )
        self.refreshes += 1
        prefix = f"oidc auth-provider ({self._where}): failed to refresh token"
        outbound = self._outbound
        if outbound is None:
            raise UpstreamError(f"{prefix}: kproxy has no way out to the issuer yet (not started)")
        try:
            async with asyncio.timeout(_HTTP_TIMEOUT):
                token_url = await self._token_endpoint(outbound, prefix)
                answer = await self._token_request(outbound, token_url, prefix)
        except TimeoutError as exc:
            raise UpstreamError(f"{prefix}: cannot reach the issuer {self._issuer}: {_describe(exc)}") from None
        except UpstreamError as exc:
            if exc.message.startswith(prefix):
                raise
            raise UpstreamError(f"{prefix}: cannot reach the issuer {self._issuer}: {exc.message}") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise UpstreamError(
                f'{prefix}: token response did not contain an id_token, either the scope "openid" wasn\'t '
                "requested upon login, or the provider doesn't support id_tokens as part of the refresh response"
            )
        self._adopt_id_token(id_token, check=False)
        updates = {"id-token": id_token}
        refresh = answer.get("refresh_token")
        if isinstance(refresh, str) and refresh and refresh != self._refresh_token:
            self._refresh_token = refresh
            updates["refresh-token"] = refresh
        log.info("oidc auth-provider (%s): refreshed the id-token at %s", self._where, self._issuer)
        if self._persist_to is not None:
            path, user = self._persist_to
            try:
                persist_tokens(path, user, updates)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                log.warning(
                    "oidc auth-provider (%s): could not persist new tokens to %s: %s; they are kept in memory",
                    self._where,
                    path,
                    _describe(exc),
                )
        return self.line

    async def _token_endpoint(self, outbound: Outbound, prefix: str) -> str:
        # https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        reply = await outbound.request("GET", url, headers={}, ca_pem=self._ca_pem)
        body = reply.body
        if reply.status != 200:
            raise UpstreamError(
                f"{prefix}: oidc: failed to query metadata endpoint {url}: "
                f"{reply.status} {reply.reason}: {_snippet(body)}"
            )
        try:
            metadata = json.loads(body)
        except ValueError:
            raise UpstreamError(f"{prefix}: oidc: failed to decode provider discovery object from {url}") from None
        endpoint = metadata.get("token_endpoint") if isinstance(metadata, dict) else None
        if not isinstance(endpoint, str) or not endpoint:
            raise UpstreamError(f"{prefix}: oidc: discovery object doesn't contain a token_endpoint ({url})")
        return endpoint

    async def _token_request(self, outbound: Outbound, url: str, prefix: str) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        # golang.org/x/oauth2 AuthStyleAutoDetect: HTTP Basic first (RFC 6749 §2.3.1, with
        # both parts form-encoded), then the credentials in the body if that fails.
        basic = base64.b64encode(
            f"{quote(self._client_id, safe='')}:{quote(self._client_secret, safe='')}".encode()
        ).decode()
        attempts: list[tuple[dict[str, str], dict[str, str]]] = [
            ({"Authorization": f"Basic {basic}"}, form),
            ({}, {**form, "client_id": self._client_id, "client_secret": self._client_secret}),
        ]
        failure = ""
        for headers, data in attempts:
            reply = await outbound.request(
                "POST",
                url,
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/x-www-form-urlencoded",
                    **headers,
                },
                body=urlencode(data).encode(),
                ca_pem=self._ca_pem,
            )
            body, status, reason = reply.body, reply.status, reply.reason
            if 200 <= status < 300:
                try:
                    answer = json.loads(body)
                except ValueError:
                    raise UpstreamError(
                        f"{prefix}: the token endpoint {url} answered {status} without a JSON body"
                    ) from None
                if not isinstance(answer, dict) or not answer.get("access_token"):
                    raise UpstreamError(f"{prefix}: oauth2: server response missing access_token ({url})")
                return answer
            failure = f"the token endpoint {url} answered {status} {reason}{_oauth_error(body)}"
        raise UpstreamError(f"{prefix}: {failure}")


def _oauth_error(body: bytes) -> str:
    # RFC 6749 §5.2 error responses; error and error_description name the problem and
    # carry no secrets. Anything else is not quoted: it might echo the request.
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(doc, dict) or not isinstance(doc.get("error"), str):
        return ""
    text = f": {doc['error'][:100]}"
    description = doc.get("error_description")
    if isinstance(description, str) and description:
        text += f" ({description[:200]})"
    return text


def _snippet(body: bytes) -> str:
    text = body[:_BODY_LIMIT].decode("utf-8", "replace")
    return repr(text + ("..." if len(body) > _BODY_LIMIT else ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {_HTTP_TIMEOUT:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def persist_tokens(path: str, user_name: str, updates: Mapping[str, str]) -> None:
    """Write ``updates`` into ``users[user_name].user.auth-provider.config`` of ``path``.

    Like client-go's ModifyConfig the file is rewritten whole (comments are lost); the
    write is atomic (a temporary file renamed over it) and keeps the file's mode.
    """
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    entry = None
    for item in (doc or {}).get("users") or ():
        if isinstance(item, dict) and item.get("name") == user_name:
            entry = item
    if entry is None or not isinstance(entry.get("user"), dict):
        raise ValueError(f"users[{user_name}] is no longer in the file")
    provider = entry["user"].get("auth-provider")
    if not isinstance(provider, dict):
        raise ValueError(f"users[{user_name}].user.auth-provider is no longer in the file")
    config = provider.setdefault("config", {})
    config.update(updates)
    mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".kproxy-kubeconfig-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=False)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
