"""Who is asking: the fake API server's authentication, in kube-apiserver's order.

1. A verified client certificate: the user is its CN, its groups its O values (the TLS
   layer already checked it against the CA; an untrusted certificate fails the handshake).
2. ``Authorization: Bearer TOKEN``: tokens map to users (a plain collection of tokens all
   map to ``TOKEN_USER``; a mapping's values are user names or :class:`UserInfo`).
   WebSocket clients may instead send the token as the subprotocol
   ``base64url.bearer.authorization.k8s.io.<base64url token>``.
3. ``Authorization: Basic ...`` against the configured user/password pairs.
4. No credential at all: ``system:anonymous`` (group ``system:unauthenticated``) on the
   public paths only — ``/version``, ``/healthz``, ``/readyz``, ``/livez`` and below —, as
   kube-apiserver 1.32 with anonymous authentication restricted to those endpoints
   (``AuthenticationConfiguration``'s ``anonymous.conditions``); everywhere when anonymous
   access is on (``--anonymous-auth=true`` unrestricted).

Every authenticated user, anonymous aside, also gets the group ``system:authenticated``
(kube-apiserver's ``AuthenticatedGroupAdder``). A presented but wrong credential is
rejected everywhere, public paths included, even with anonymous access on: kube-apiserver
tries anonymous only when no credential was presented. ``None`` means 401.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from kproxy.testing.upgrade import BEARER_PROTOCOL_PREFIX

__all__ = [
    "ALL_AUTHENTICATED",
    "ALL_UNAUTHENTICATED",
    "ANONYMOUS_USER",
    "TOKEN_USER",
    "Authenticator",
    "UserInfo",
    "client_cert_identity",
    "client_cert_cn",
    "public_path",
]

TOKEN_USER = "kproxy-token-user"
ANONYMOUS_USER = "system:anonymous"
ALL_AUTHENTICATED = "system:authenticated"
ALL_UNAUTHENTICATED = "system:unauthenticated"
_PUBLIC_PATHS = ("/version", "/healthz", "/readyz", "/livez")


@dataclass(frozen=True)
class UserInfo:
    """A user as kube-apiserver's ``user.Info``: name, uid, groups and extra values."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def authenticated(self) -> UserInfo:
        """With ``system:authenticated`` added, as the authenticator chain adds it."""
        if ALL_AUTHENTICATED in self.groups:
            return self
        return UserInfo(self.username, self.uid, (*self.groups, ALL_AUTHENTICATED), self.extra)

    def to_json(self) -> dict[str, object]:
        """``authentication.k8s.io/v1 UserInfo`` (empty fields left out, as Go's omitempty)."""
        out: dict[str, object] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo(ANONYMOUS_USER, groups=(ALL_UNAUTHENTICATED,))


def public_path(path: str) -> bool:
    """Whether anonymous requests may reach ``path`` (the health and version endpoints and below)."""
    return any(path == p or path.startswith(p + "/") for p in _PUBLIC_PATHS)


class Authenticator:
    def __init__(
        self,
        tokens: Collection[str] | Mapping[str, str | UserInfo],
        basic_auth: Collection[tuple[str, str]],
        anonymous: bool,
    ) -> None:
        if isinstance(tokens, Mapping):
            self.tokens: dict[str, str | UserInfo] = {str(k): v for k, v in tokens.items()}
        else:
            self.tokens = dict.fromkeys(tokens, TOKEN_USER)
        self.basic = dict(basic_auth)
        self.anonymous = anonymous

    def authenticate(self, request: web.BaseRequest, cert: UserInfo | None, path: str = "/") -> UserInfo | None:
        """The user, or None for 401. ``cert``: the client certificate's user; ``path``: decoded."""
        if cert is not None:
            return cert.authenticated()
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            value = value.strip()
            if scheme.lower() == "bearer" and value:
                return self._token(value)
            if scheme.lower() == "basic" and value:
                user = self._basic(value)
                return UserInfo(user).authenticated() if user is not None else None
            return None
        token = _websocket_bearer_token(request)
        if token is not None:
            return self._token(token)
        return ANONYMOUS if self.anonymous or public_path(path) else None

    def _token(self, token: str) -> UserInfo | None:
        user = self.tokens.get(token)
        if user is None:
            return None
        return (user if isinstance(user, UserInfo) else UserInfo(str(user))).authenticated()

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


def client_cert_identity(request: web.BaseRequest) -> UserInfo | None:
    """The verified client certificate's user (CN) and groups (each O), if one was presented."""
    transport = request.transport
    if transport is None:
        return None
    peercert = transport.get_extra_info("peercert")
    if not peercert:
        return None
    name: str | None = None
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = str(value)
            elif key == "organizationName":
                groups.append(str(value))
    # kube-apiserver's x509 authenticator refuses a certificate without a CN.
    return UserInfo(name, groups=tuple(groups)) if name else None


def client_cert_cn(request: web.BaseRequest) -> str | None:
    """The CN of the verified client certificate, if one was presented."""
    identity = client_cert_identity(request)
    return identity.username if identity is not None else None
