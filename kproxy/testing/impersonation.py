"""Acting as someone else: kube-apiserver's impersonation filter (``filters.WithImpersonation``).

In: the authenticated user and the request's headers::

    Impersonate-User: jane                      the user (system:serviceaccount:NS:NAME: a service account)
    Impersonate-Uid: 1001                       its uid
    Impersonate-Group: dev                      a group (repeatable)
    Impersonate-Extra-Scopes: view              an extra value (repeatable; the key %-encoded, lower-cased)

Out: the user the request runs as. Each requested thing is authorized separately, in
Go's order (user, groups, extras, uid), with the verb ``impersonate`` on ``users``,
``serviceaccounts`` (in the account's namespace), ``groups``, ``userextras/KEY`` or
``uids`` (the last two in API group ``authentication.k8s.io``); the first refusal is the
403 of ``responsewriters.Forbidden``, e.g.::

    users "jane" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope

Groups, extras or a uid without a user are a 500 with Go's plain-text ``InternalError``
(``requested [...] without impersonating a user``). The impersonated user gets
``system:authenticated`` unless the groups already name it or ``system:unauthenticated``
(``system:unauthenticated`` instead for ``system:anonymous``); a service account without
explicit groups gets ``system:serviceaccounts`` and ``system:serviceaccounts:NS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from kproxy.testing.auth import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS_USER, UserInfo
from kproxy.testing.authorization import Attributes, Authorizer, forbidden

__all__ = ["ImpersonationError", "impersonate"]

_EXTRA_PREFIX = "impersonate-extra-"
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class ImpersonationError(Exception):
    """A request Go's filter answers with ``InternalError``: a plain-text 500."""


@dataclass(frozen=True)
class _Ask:
    kind: str  # ServiceAccount | User | Group | UserExtra | UID
    name: str
    namespace: str = ""
    field_path: str = ""  # the extra's key
    api_version: str = ""

    def go_format(self) -> str:
        # Go's %v of a v1.ObjectReference: its seven fields, space-separated.
        fields = (self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path)
        return "{" + " ".join(fields) + "}"

    def attributes(self) -> Attributes:
        group = "authentication.k8s.io" if self.kind in ("UserExtra", "UID") else ""
        resource, subresource = {
            "ServiceAccount": ("serviceaccounts", ""),
            "User": ("users", ""),
            "Group": ("groups", ""),
            "UserExtra": ("userextras", self.field_path),
            "UID": ("uids", ""),
        }[self.kind]
        return Attributes(
            verb="impersonate",
            resource_request=True,
            api_group=group,
            api_version="v1" if group else "",
            namespace=self.namespace,
            resource=resource,
            subresource=subresource,
            name=self.name,
        )


def _asks(headers: CIMultiDictProxy[str]) -> list[_Ask]:
    asks: list[_Ask] = []
    user = headers.get("Impersonate-User", "")
    if user:
        namespace, _, name = user.removeprefix(_SERVICE_ACCOUNT_PREFIX).partition(":")
        if user.startswith(_SERVICE_ACCOUNT_PREFIX) and namespace and name and ":" not in name:
            asks.append(_Ask("ServiceAccount", name, namespace))
        else:
            asks.append(_Ask("User", user))
    asks.extend(_Ask("Group", group) for group in headers.getall("Impersonate-Group", ()))
    for header, value in headers.items():
        if header.lower().startswith(_EXTRA_PREFIX):
            key = unquote(header[len(_EXTRA_PREFIX) :].lower())
            asks.append(_Ask("UserExtra", value, field_path=key, api_version="authentication.k8s.io/v1"))
    uid = headers.get("Impersonate-Uid", "")
    if uid:
        asks.append(_Ask("UID", uid, api_version="authentication.k8s.io/v1"))
    if asks and not user:
        raise ImpersonationError(f"requested [{' '.join(a.go_format() for a in asks)}] without impersonating a user")
    return asks


def impersonate(requestor: UserInfo, headers: CIMultiDictProxy[str], authorizer: Authorizer) -> UserInfo:
    """The user the request acts as (``requestor`` when nothing is impersonated).

    Raises :class:`~kproxy.testing.status.ApiError` (403) or :class:`ImpersonationError`.
    """
    asks = _asks(headers)
    if not asks:
        return requestor
    groups_given = "Impersonate-Group" in headers
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for ask in asks:
        attrs = ask.attributes()
        if not authorizer.allowed(requestor, attrs):
            raise forbidden(requestor, attrs)
        if ask.kind == "ServiceAccount":
            username = f"{_SERVICE_ACCOUNT_PREFIX}{ask.namespace}:{ask.name}"
            if not groups_given:
                groups = ["system:serviceaccounts", f"system:serviceaccounts:{ask.namespace}"]
        elif ask.kind == "User":
            username = ask.name
        elif ask.kind == "Group":
            groups.append(ask.name)
        elif ask.kind == "UserExtra":
            extra.setdefault(ask.field_path, []).append(ask.name)
        else:
            uid = ask.name
    if username != ANONYMOUS_USER:
        if ALL_AUTHENTICATED not in groups and ALL_UNAUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
    elif ALL_UNAUTHENTICATED not in groups:
        groups.append(ALL_UNAUTHENTICATED)
    return UserInfo(username, uid, tuple(groups), _frozen(extra))


def _frozen(extra: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {key: tuple(values) for key, values in extra.items()}
