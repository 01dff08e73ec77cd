"""Impersonation in the fake (``kproxy.testing.impersonation``): who may, and who the
request then runs as, as kube-apiserver's ``WithImpersonation`` decides."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from kproxy.testing.auth import UserInfo
from kproxy.testing.authorization import Authorizer, Rule, default_rules
from kproxy.testing.impersonation import ImpersonationError, impersonate
from kproxy.testing.status import ApiError

BOB = UserInfo("bob", groups=("system:authenticated",))


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def allowed() -> Authorizer:
    return Authorizer(default_rules(anonymous=False), impersonators=("bob",))


def test_nothing_asked_is_the_requestor() -> None:
    assert impersonate(BOB, headers(("Accept", "*/*")), Authorizer([])) is BOB


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ((("Impersonate-User", "jane"),), UserInfo("jane", groups=("system:authenticated",))),
        (
            (("Impersonate-User", "jane"), ("Impersonate-Group", "dev"), ("Impersonate-Group", "ops")),
            UserInfo("jane", groups=("dev", "ops", "system:authenticated")),
        ),
        (
            (("Impersonate-User", "jane"), ("Impersonate-Group", "system:unauthenticated")),
            UserInfo("jane", groups=("system:unauthenticated",)),
        ),
        (
            (("Impersonate-User", "jane"), ("Impersonate-Uid", "1001")),
            UserInfo("jane", uid="1001", groups=("system:authenticated",)),
        ),
        (
            (
                ("Impersonate-User", "jane"),
                ("Impersonate-Extra-Scopes", "view"),
                ("Impersonate-Extra-Scopes", "edit"),
                ("Impersonate-Extra-Example.com%2Freason", "on call"),
            ),
            UserInfo(
                "jane",
                groups=("system:authenticated",),
                extra={"scopes": ("view", "edit"), "example.com/reason": ("on call",)},
            ),
        ),
        (
            (("Impersonate-User", "system:serviceaccount:kube-system:robot"),),
            UserInfo(
                "system:serviceaccount:kube-system:robot",
                groups=("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
            ),
        ),
        ((("Impersonate-User", "system:anonymous"),), UserInfo("system:anonymous", groups=("system:unauthenticated",))),
    ],
)
def test_the_effective_user(pairs: tuple[tuple[str, str], ...], expected: UserInfo) -> None:
    assert impersonate(BOB, headers(*pairs), allowed()) == expected


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            (("Impersonate-User", "alice"),),
            'users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" '
            "at the cluster scope",
        ),
        (
            (("Impersonate-User", "system:serviceaccount:ns:robot"),),
            'serviceaccounts "robot" is forbidden: User "bob" cannot impersonate resource "serviceaccounts" '
            'in API group "" in the namespace "ns"',
        ),
    ],
)
def test_refused_without_the_permission(pairs: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(ApiError) as info:
        impersonate(BOB, headers(*pairs), Authorizer(default_rules(anonymous=False)))
    assert (info.value.code, info.value.reason, info.value.message) == (403, "Forbidden", message)


def test_each_part_is_authorized_on_its_own() -> None:
    # bob may impersonate users but not groups, extras or uids.
    authorizer = Authorizer([Rule(users=("bob",), verbs=("impersonate",), resources=("users",))])
    assert impersonate(BOB, headers(("Impersonate-User", "jane")), authorizer).username == "jane"
    cases = [
        (("Impersonate-Group", "ops"), 'groups "ops" is forbidden: User "bob" cannot impersonate resource "groups"'),
        (
            ("Impersonate-Extra-Scopes", "view"),
            'userextras.authentication.k8s.io "view" is forbidden: User "bob" cannot impersonate resource '
            '"userextras/scopes" in API group "authentication.k8s.io" at the cluster scope',
        ),
        (
            ("Impersonate-Uid", "7"),
            'uids.authentication.k8s.io "7" is forbidden: User "bob" cannot impersonate resource "uids" '
            'in API group "authentication.k8s.io" at the cluster scope',
        ),
    ]
    for pair, message in cases:
        with pytest.raises(ApiError) as info:
            impersonate(BOB, headers(("Impersonate-User", "jane"), pair), authorizer)
        assert info.value.message.startswith(message)


def test_groups_without_a_user_are_go_s_internal_error() -> None:
    with pytest.raises(ImpersonationError) as info:
        impersonate(BOB, headers(("Impersonate-Group", "ops")), allowed())
    assert str(info.value) == "requested [{Group  ops    }] without impersonating a user"
