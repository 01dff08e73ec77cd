"""kproxy.policy.kubeconfig.merging: which files, and how several merge into one, as tables."""

from __future__ import annotations

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig.merging import kubeconfig_paths, merge
from kproxy.policy.kubeconfig.model import Cluster, Context, KubeConfig, User
from kproxy.policy.kubeconfig.selection import Overrides, select
from tests.policy.kubeconfig.samples import kc

A = kc(
    """
    clusters: [{name: shared, cluster: {server: "https://a", tls-server-name: from-a}}, {name: only-a, cluster: {}}]
    users: [{name: shared, user: {username: a}}]
    contexts: [{name: shared, context: {cluster: shared}}]
    """,
    "/a",
)
B = kc(
    """
    clusters: [{name: shared, cluster: {server: "https://b", proxy-url: "http://p"}}]
    users: [{name: shared, user: {username: b, as: b}}, {name: only-b, user: {}}]
    contexts: [{name: shared, context: {user: shared}}, {name: only-b, context: {}}]
    current-context: from-b
    """,
    "/b",
)
C = kc("current-context: from-c\nclusters: [{name: only-c, cluster: {}}]", "/c")


@pytest.mark.parametrize(
    ("configs", "current", "current_source"),
    [
        ([A, B, C], "from-b", "/b"),  # A sets none: the first non-empty wins
        ([C, B, A], "from-c", "/c"),
        ([A], "", None),
        ([], "", None),
    ],
)
def test_merge_current_context_first_non_empty_wins(
    configs: list[KubeConfig], current: str, current_source: str | None
) -> None:
    merged = merge(configs)
    assert merged.current_context == current
    assert merged.sources.get("current-context") == current_source


def test_errors_after_a_merge_name_the_file_that_defined_the_entry() -> None:
    with pytest.raises(ConfigError) as err:
        select(merge([A, B, C]), Overrides(context="only-b"))
    assert str(err.value).startswith("/b: contexts[only-b].context.cluster: is empty")
    with pytest.raises(ConfigError) as err:
        select(merge([A, B, C]), Overrides(context="shared", user="shared", token="t"))
    assert str(err.value).startswith("/a: users[shared].user: more than one authentication method")


def test_merge_first_file_wins_each_name_whole() -> None:
    merged = merge([A, B, C])
    # The whole entry of the first file wins: no field-by-field mixing with later files.
    assert merged.clusters["shared"] == Cluster(server="https://a", tls_server_name="from-a")
    assert merged.users["shared"] == User(username="a")
    assert merged.contexts["shared"] == Context(cluster="shared")
    assert set(merged.clusters) == {"shared", "only-a", "only-c"}
    assert set(merged.users) == {"shared", "only-b"}
    assert merged.sources["clusters[shared]"] == "/a"
    assert merged.sources["users[only-b]"] == "/b"
    assert merged.sources["clusters[only-c]"] == "/c"
    assert merge([B, A]).clusters["shared"].server == "https://b"


@pytest.mark.parametrize(
    ("flag", "env", "home", "expected"),
    [
        ("/x/explicit", {"KUBECONFIG": "/a:/b"}, "/home/me", (["/x/explicit"], True)),
        (None, {"KUBECONFIG": "/a:/b:/a::/c:"}, "/home/me", (["/a", "/b", "/c"], False)),
        ("", {"KUBECONFIG": "/a"}, "/home/me", (["/a"], False)),
        (None, {"KUBECONFIG": ":"}, "/home/me", ([], False)),  # set but only empty entries
        (None, {"KUBECONFIG": ""}, "/home/me", (["/home/me/.kube/config"], False)),
        (None, {}, "/home/me", (["/home/me/.kube/config"], False)),
        (None, {}, None, ([], False)),
        (None, {}, "", ([], False)),
    ],
)
def test_kubeconfig_paths(
    flag: str | None, env: dict[str, str], home: str | None, expected: tuple[list[str], bool]
) -> None:
    assert kubeconfig_paths(flag, env, home) == expected
