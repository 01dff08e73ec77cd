"""Who is asking: the fake API server's authentication, in kube-apiserver's order.

1. A verified client certificate: the user is its CN (the TLS layer already checked it
   against the CA; an untrusted certificate fails the handshake).
2. ``Authorization: Bearer TOKEN``: tokens map to users (a plain collection of tokens all
   map to ``TOKEN_USER``). WebSocket clients may instead send the token as the subprotocol
   ``base64url.bearer.authorization.k8s.io.<base64url token>``.
3. ``Authorization: Basic ...`` against the configured user/password pairs.
4. No credential at all: ``system:anonymous`` if anonymous access is on.

A presented but wrong credential is rejected even with anonymous access on, as
kube-apiserver does. ``None`` means 401.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping

from aiohttp import web

from kproxy.testing.upgrade import BEARER_PROTOCOL_PREFIX

__all__ = ["ANONYMOUS_USER", "TOKEN_USER", "Authenticator", "client_cert_cn"]

TOKEN_USER = "kproxy-token-user"
ANONYMOUS_USER = "system:anonymous"


class Authenticator:
    def __init__(
        self,
        tokens: Collection[str] | Mapping[str, str],
        basic_auth: Collection[tuple[str, str]],
        anonymous: bool,
    ) -> None:
        if isinstance(tokens, Mapping):
            self.tokens: dict[str, str] = {str(k): str(v) for k, v in tokens.items()}
        else:
            self.tokens = dict.fromkeys(tokens, TOKEN_USER)
        self.basic = dict(basic_auth)
        self.anonymous = anonymous

    def authenticate(self, request: web.BaseRequest, cert_cn: str | None) -> str | None:
        """The user name, or None for 401."""
        if cert_cn is not None:
            return cert_cn
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "bearer" and value:
                return self.tokens.get(value)
            if scheme.lower() == "basic" and value:
                return self._basic(value)
            return None
        token = _websocket_bearer_token(request)
        if token is not None:
            return self.tokens.get(token)
        return ANONYMOUS_USER if self.anonymous else None

    def _basic(self, value: str) -> str | None:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if sep and user in self.basic and self.basic[user] == password:
            return user
        return None


def _websocket_bearer_token(request: web.BaseRequest) -> str | None:
    # Browsers cannot set Authorization on a WebSocket, so kube-apiserver also takes the
    # token from a subprotocol.
    for value in request.headers.getall("Sec-WebSocket-Protocol", ()):
        for proto in value.split(","):
            proto = proto.strip()
            if proto.startswith(BEARER_PROTOCOL_PREFIX):
                encoded = proto[len(BEARER_PROTOCOL_PREFIX) :]
                try:
                    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
                except (binascii.Error, UnicodeDecodeError):
                    return None
    return None


def client_cert_cn(request: web.BaseRequest) -> str | None:
    """The CN of the verified client certificate, if one was presented."""
    transport = request.transport
    if transport is None:
        return None
    peercert = transport.get_extra_info("peercert")
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
