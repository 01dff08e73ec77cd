"""kproxy.policy.kubeconfig: parse, merge, paths and selection, as tables of input → result."""

from __future__ import annotations

import base64
import dataclasses
import textwrap
from typing import Any

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig import (
    Cluster,
    Context,
    KubeConfig,
    Overrides,
    Selected,
    User,
    kubeconfig_paths,
    merge,
    parse,
    select,
)

SRC = "/home/me/.kube/config"
TOKEN = "tok-S3CRET-0001"
PASSWORD = "pw-S3CRET-0002"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nkey-S3CRET-0003\n-----END PRIVATE KEY-----\n"
KEY_B64 = base64.b64encode(KEY_PEM).decode()
CA_PEM = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CA_B64 = base64.b64encode(CA_PEM).decode()
SECRETS = (TOKEN, PASSWORD, "key-S3CRET-0003", KEY_B64, "S3CRET")


def kc(text: str, source: str = SRC) -> KubeConfig:
    return parse(textwrap.dedent(text), source)


def one(
    server: str = "https://h:6443", cluster: str = "", user: str = "", context: str = "", current: str = "ctx"
) -> KubeConfig:
    """A config with one cluster c, one user u and one context ctx (extra YAML lines indented)."""
    return kc(f"""
        clusters:
        - name: c
          cluster:
            server: {server}
{textwrap.indent(textwrap.dedent(cluster), " " * 12)}
        users:
        - name: u
          user:
            username: ""
{textwrap.indent(textwrap.dedent(user), " " * 12)}
        contexts:
        - name: ctx
          context:
            cluster: c
            user: u
{textwrap.indent(textwrap.dedent(context), " " * 12)}
        current-context: {current}
        """)


# ---------------------------------------------------------------------------- parse


FULL = f"""
    apiVersion: v1
    kind: Config
    preferences: {{}}
    clusters:
    - name: prod
      cluster:
        server: https://prod.example:6443/k8s/clusters/c-1
        certificate-authority-data: {CA_B64}
        insecure-skip-tls-verify: false
        tls-server-name: api.prod
        proxy-url: http://proxy.corp:3128
        disable-compression: true
        extensions:
        - name: client.authentication.k8s.io/exec
          extension: {{audience: prod}}
        unknown-key: ignored
    users:
    - name: alice
      user:
        token: {TOKEN}
        tokenFile: tokens/alice
        username: alice
        password: {PASSWORD}
        client-certificate: certs/alice.crt
        client-key-data: {KEY_B64}
        as: bob
        as-uid: "1234"
        as-groups: [devs, ops]
        as-user-extra: {{scopes: [view, edit]}}
        auth-provider: {{name: oidc, config: {{client-id: k}}}}
    contexts:
    - name: prod-alice
      context: {{cluster: prod, user: alice, namespace: team-a}}
    current-context: prod-alice
"""


def test_parse_all_fields() -> None:
    cfg = kc(FULL)
    assert cfg.clusters["prod"] == Cluster(
        server="https://prod.example:6443/k8s/clusters/c-1",
        certificate_authority_data=CA_PEM,
        tls_server_name="api.prod",
        proxy_url="http://proxy.corp:3128",
        disable_compression=True,
        extensions={"client.authentication.k8s.io/exec": {"audience": "prod"}},
    )
    assert cfg.users["alice"] == User(
        token=TOKEN,
        token_file="/home/me/.kube/tokens/alice",
        username="alice",
        password=PASSWORD,
        client_certificate="/home/me/.kube/certs/alice.crt",
        client_key_data=KEY_PEM,
        impersonate="bob",
        impersonate_uid="1234",
        impersonate_groups=("devs", "ops"),
        impersonate_extra=(("scopes", ("view", "edit")),),
        auth_provider={"name": "oidc", "config": {"client-id": "k"}},
    )
    assert cfg.contexts == {"prod-alice": Context("prod", "alice", "team-a")}
    assert cfg.current_context == "prod-alice"
    assert cfg.sources == {
        "clusters[prod]": SRC,
        "users[alice]": SRC,
        "contexts[prod-alice]": SRC,
        "current-context": SRC,
    }


def test_parsed_values_are_read_only() -> None:
    cfg = kc(FULL)
    with pytest.raises(TypeError):
        cfg.clusters["x"] = Cluster()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.users["alice"].token = "x"  # type: ignore[misc]
    ext = cfg.clusters["prod"].extensions["client.authentication.k8s.io/exec"]
    with pytest.raises(TypeError):
        ext["audience"] = "other"


@pytest.mark.parametrize(
    ("written", "resolved"),
    [
        ("ca.pem", "/home/me/.kube/ca.pem"),
        ("./pki/ca.pem", "/home/me/.kube/pki/ca.pem"),
        ("../shared/ca.pem", "/home/me/shared/ca.pem"),
        ("/etc/k8s/ca.pem", "/etc/k8s/ca.pem"),
        ("", None),
    ],
)
def test_relative_paths_resolve_against_the_file(written: str, resolved: str | None) -> None:
    cfg = kc(f"""
        clusters:
        - name: c
          cluster: {{server: "https://h", certificate-authority: "{written}"}}
        users:
        - name: u
          user: {{tokenFile: "{written}", client-certificate: "{written}", client-key: "{written}"}}
        """)
    assert cfg.clusters["c"].certificate_authority == resolved
    u = cfg.users["u"]
    assert (u.token_file, u.client_certificate, u.client_key) == (resolved, resolved, resolved)


@pytest.mark.parametrize(
    ("command", "resolved"),
    [
        ("gke-gcloud-auth-plugin", "gke-gcloud-auth-plugin"),  # PATH lookup: left alone
        ("./bin/plugin", "/home/me/.kube/bin/plugin"),
        ("bin/plugin", "/home/me/.kube/bin/plugin"),
        ("/usr/local/bin/plugin", "/usr/local/bin/plugin"),
    ],
)
def test_exec_command_with_a_slash_resolves(command: str, resolved: str) -> None:
    cfg = kc(f"""
        users:
        - name: u
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: {command}
              args: [token]
              env: [{{name: A, value: b}}]
        """)
    exec_ = cfg.users["u"].exec
    assert exec_ is not None
    assert exec_["command"] == resolved
    assert exec_["args"] == ("token",)
    assert exec_["env"][0] == {"name": "A", "value": "b"}


def test_no_source_directory_leaves_paths_as_written() -> None:
    cfg = kc('clusters: [{name: c, cluster: {certificate-authority: "ca.pem"}}]', source="")
    assert cfg.clusters["c"].certificate_authority == "ca.pem"


@pytest.mark.parametrize(
    ("written", "decoded"),
    [
        (CA_B64, CA_PEM),
        (CA_B64[:20] + "\\n" + CA_B64[20:] + "\\r\\n", CA_PEM),  # Go's decoder skips CR and LF
        ("", None),
    ],
)
def test_data_fields_are_decoded(written: str, decoded: bytes | None) -> None:
    cfg = kc(f'clusters: [{{name: c, cluster: {{certificate-authority-data: "{written}"}}}}]')
    assert cfg.clusters["c"].certificate_authority_data == decoded


@pytest.mark.parametrize(
    ("section", "field_name", "bad"),
    [
        ("clusters", "certificate-authority-data", "S3CRET*not*base64"),
        ("users", "client-certificate-data", "S3CRET!!"),
        ("users", "client-key-data", "S3CRETabc"),  # bad padding
        ("users", "client-key-data", "S3CRET S3CRET"),  # spaces are not skipped by Go
    ],
)
def test_bad_base64_names_the_field_not_the_value(section: str, field_name: str, bad: str) -> None:
    inner = "cluster" if section == "clusters" else "user"
    with pytest.raises(ConfigError) as err:
        kc(f'{section}: [{{name: x, {inner}: {{{field_name}: "{bad}"}}}}]')
    msg = str(err.value)
    assert msg.startswith(f"{SRC}: {section}[x].{inner}.{field_name}: is not valid base64")
    assert "S3CRET" not in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("clusters: [\n  - name: a\n", "line 2 column 3"),
        ("users:\n- name: u\n  user:\n    token: a: b\n", "line 4 column 13"),
        ("a: 1\n\tb: 2\n", "line 2 column 1"),
    ],
)
def test_yaml_syntax_errors_name_file_and_position(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, "/tmp/broken.yaml")
    msg = str(err.value)
    assert msg.startswith(f"/tmp/broken.yaml: invalid YAML: {where}: ")
    assert "\n" not in msg


def test_unreadable_characters_are_one_line_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse("a: \x00", "/tmp/broken.yaml")
    assert str(err.value).startswith("/tmp/broken.yaml: invalid YAML: unacceptable character #x0000")
    assert "\n" not in str(err.value)


def test_yaml_error_does_not_quote_the_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse(f"users:\n- name: u\n  user:\n    token: {TOKEN}: [\n", SRC)
    assert TOKEN not in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", f"{SRC}: must be a mapping (apiVersion: v1, kind: Config), not a list"),
        ("clusters: {a: b}", f"{SRC}: clusters: must be a list of {{name: ..., cluster: ...}} entries, not a mapping"),
        ("clusters: [x]", f"{SRC}: clusters[0]: must be a mapping with name and cluster, not a string"),
        ("clusters: [{cluster: {}}]", f"{SRC}: clusters[0].name: must be a non-empty string"),
        ("users: [{name: 7, user: {}}]", f"{SRC}: users[0].name: must be a non-empty string"),
        ("clusters: [{name: a, cluster: [x]}]", f"{SRC}: clusters[a].cluster: must be a mapping, not a list"),
        (
            "clusters: [{name: a, cluster: {server: 6443}}]",
            f"{SRC}: clusters[a].cluster.server: must be a string, not a number",
        ),
        (
            "clusters: [{name: a, cluster: {insecure-skip-tls-verify: 'true'}}]",
            f"{SRC}: clusters[a].cluster.insecure-skip-tls-verify: must be a boolean, not a string",
        ),
        (
            "clusters: [{name: a, cluster: {certificate-authority-data: 12}}]",
            f"{SRC}: clusters[a].cluster.certificate-authority-data: must be a string, not a number",
        ),
        (
            "clusters: [{name: a, cluster: {extensions: {x: 1}}}]",
            f"{SRC}: clusters[a].cluster.extensions: must be a list",
        ),
        ("users: [{name: u, user: {token: [a]}}]", f"{SRC}: users[u].user.token: must be a string, not a list"),
        ("users: [{name: u, user: {as-groups: devs}}]", f"{SRC}: users[u].user.as-groups: must be a list of strings"),
        ("users: [{name: u, user: {as-groups: [1]}}]", f"{SRC}: users[u].user.as-groups: must be a list of strings"),
        (
            "users: [{name: u, user: {as-user-extra: [a]}}]",
            f"{SRC}: users[u].user.as-user-extra: must be a mapping, not a list",
        ),
        (
            "users: [{name: u, user: {as-user-extra: {k: v}}}]",
            f"{SRC}: users[u].user.as-user-extra.k: must be a list of strings",
        ),
        ("users: [{name: u, user: {exec: ./plugin}}]", f"{SRC}: users[u].user.exec: must be a mapping, not a string"),
        ("users: [{name: u, user: {auth-provider: [x]}}]", f"{SRC}: users[u].user.auth-provider: must be a mapping"),
        (
            "contexts: [{name: c, context: {namespace: true}}]",
            f"{SRC}: contexts[c].context.namespace: must be a string, not a boolean",
        ),
        ("current-context: [a]", f"{SRC}: current-context: must be a string, not a list"),
        (
            "clusters: [{name: a, cluster: {}}, {name: a, cluster: {}}]",
            f"{SRC}: clusters[a]: is defined twice in this file",
        ),
        ("apiVersion: v2", f'{SRC}: apiVersion: must be "v1"'),
        ("kind: Pod", f'{SRC}: kind: must be "Config"'),
    ],
)
def test_wrong_shapes_name_file_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, SRC)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n", "clusters:\nusers: ~\n"])
def test_empty_files_are_empty_configs(text: str) -> None:
    assert parse(text, SRC) == KubeConfig()


def test_nulls_are_zero_values_and_unknown_keys_are_ignored() -> None:
    cfg = kc("""
        futureField: {a: 1}
        clusters:
        - name: c
          cluster: ~
        - name: d
          cluster: {server: ~, certificate-authority: ~, insecure-skip-tls-verify: ~, somethingNew: 1}
        contexts: [{name: x, context: ~}]
        current-context: ~
        """)
    assert cfg.clusters == {"c": Cluster(), "d": Cluster()}
    assert cfg.contexts == {"x": Context()}
    assert cfg.current_context == ""


# ---------------------------------------------------------------------------- merge


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


# ---------------------------------------------------------------------------- paths


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


# ---------------------------------------------------------------------------- select


TWO = kc(f"""
    clusters:
    - name: prod
      cluster: {{server: "https://prod:6443", certificate-authority-data: {CA_B64}, tls-server-name: api.prod}}
    - name: dev
      cluster: {{server: "https://dev:6443", certificate-authority: /etc/dev-ca.pem}}
    - name: lab
      cluster: {{server: "https://lab:6443", insecure-skip-tls-verify: true}}
    users:
    - name: alice
      user: {{token: {TOKEN}, tokenFile: /run/alice-token}}
    - name: carol
      user: {{client-certificate: /c.crt, client-key-data: {KEY_B64}, as: root, as-groups: [admins], as-uid: "9"}}
    contexts:
    - name: prod
      context: {{cluster: prod, user: alice, namespace: team-a}}
    - name: dev
      context: {{cluster: dev, user: carol}}
    - name: lab
      context: {{cluster: lab, user: alice}}
    current-context: prod
    """)


def test_select_uses_current_context() -> None:
    sel = select(TWO, Overrides())
    assert sel == Selected("prod", "prod", "alice", "team-a", TWO.clusters["prod"], TWO.users["alice"])


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (Overrides(context="dev"), ("dev", "dev", "carol", "default")),
        (Overrides(cluster="dev"), ("prod", "dev", "alice", "team-a")),
        (Overrides(user="carol"), ("prod", "prod", "carol", "team-a")),
        (Overrides(context="dev", cluster="prod", user="alice"), ("dev", "prod", "alice", "default")),
    ],
)
def test_select_names(overrides: Overrides, names: tuple[str, str, str, str]) -> None:
    sel = select(TWO, overrides)
    assert (sel.context_name, sel.cluster_name, sel.user_name, sel.namespace) == names
    assert sel.cluster == TWO.clusters[sel.cluster_name]
    assert sel.user == TWO.users[sel.user_name]


def _changed(overrides: Overrides, context: str = "prod") -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user fields that the overrides changed relative to the kubeconfig."""
    sel = select(TWO, dataclasses.replace(overrides, context=overrides.context or context))
    base_c, base_u = TWO.clusters[sel.cluster_name], TWO.users[sel.user_name]
    dc = {
        f.name: getattr(sel.cluster, f.name)
        for f in dataclasses.fields(Cluster)
        if getattr(sel.cluster, f.name) != getattr(base_c, f.name)
    }
    du = {
        f.name: getattr(sel.user, f.name)
        for f in dataclasses.fields(User)
        if getattr(sel.user, f.name) != getattr(base_u, f.name)
    }
    return dc, du


@pytest.mark.parametrize(
    ("overrides", "context", "cluster_changes", "user_changes"),
    [
        # --server replaces the server and clears a kubeconfig tls-server-name (getCluster).
        (Overrides(server="https://other:443"), "prod", {"server": "https://other:443", "tls_server_name": ""}, {}),
        (
            Overrides(server="https://other", tls_server_name="n"),
            "prod",
            {"server": "https://other", "tls_server_name": "n"},
            {},
        ),
        (Overrides(tls_server_name="n"), "prod", {"tls_server_name": "n"}, {}),
        # --insecure-skip-tls-verify=true without a CA flag clears CA file and data.
        (
            Overrides(insecure_skip_tls_verify=True),
            "prod",
            {"insecure_skip_tls_verify": True, "certificate_authority_data": None},
            {},
        ),
        (
            Overrides(insecure_skip_tls_verify=True),
            "dev",
            {"insecure_skip_tls_verify": True, "certificate_authority": None},
            {},
        ),
        # An explicit false cannot undo the kubeconfig's true (client-go merges non-zero only).
        (Overrides(insecure_skip_tls_verify=False), "lab", {}, {}),
        # --certificate-authority replaces the CA, clears CA data and the insecure setting.
        (
            Overrides(certificate_authority="/flag/ca.pem"),
            "prod",
            {"certificate_authority": "/flag/ca.pem", "certificate_authority_data": None},
            {},
        ),
        (
            Overrides(certificate_authority="/flag/ca.pem"),
            "lab",
            {"certificate_authority": "/flag/ca.pem", "insecure_skip_tls_verify": False},
            {},
        ),
        # --token replaces the token and clears tokenFile.
        (Overrides(token="flag-S3CRET"), "prod", {}, {"token": "flag-S3CRET", "token_file": None}),
        # --client-certificate / --client-key replace the files and clear the data.
        (Overrides(client_key="/flag/k.pem"), "dev", {}, {"client_key": "/flag/k.pem", "client_key_data": None}),
        (Overrides(client_certificate="/flag/c.crt"), "dev", {}, {"client_certificate": "/flag/c.crt"}),
        # Impersonation flags replace their own field each (mergo WithOverride).
        (Overrides(impersonate="bob"), "dev", {}, {"impersonate": "bob"}),
        (
            Overrides(impersonate="bob", impersonate_groups=("g1", "g2"), impersonate_uid="7"),
            "dev",
            {},
            {"impersonate": "bob", "impersonate_groups": ("g1", "g2"), "impersonate_uid": "7"},
        ),
        (Overrides(impersonate="bob"), "prod", {}, {"impersonate": "bob"}),
    ],
)
def test_select_override_rules(
    overrides: Overrides, context: str, cluster_changes: dict[str, Any], user_changes: dict[str, Any]
) -> None:
    assert _changed(overrides, context) == (cluster_changes, user_changes)


def test_select_token_override_keeps_exec_for_the_credentials_layer() -> None:
    cfg = kc("""
        clusters: [{name: c, cluster: {server: "https://h"}}]
        users: [{name: u, user: {exec: {command: plugin, apiVersion: v1}}}]
        contexts: [{name: x, context: {cluster: c, user: u}}]
        current-context: x
        """)
    user = select(cfg, Overrides(token="t")).user
    assert user.token == "t"
    assert user.exec is not None


@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        (KubeConfig(), Overrides(server="https://flag:6443")),
        (TWO, Overrides(context="dev", server="https://flag:6443")),
    ],
)
def test_select_server_flag_alone_is_enough(config: KubeConfig, overrides: Overrides) -> None:
    assert select(config, overrides).cluster.server == "https://flag:6443"


def test_select_flags_only_builds_cluster_and_user() -> None:
    sel = select(KubeConfig(), Overrides(server="https://h", token="t", certificate_authority="/ca", impersonate="b"))
    assert sel == Selected(
        "",
        "",
        "",
        "default",
        Cluster(server="https://h", certificate_authority="/ca"),
        User(token="t", impersonate="b"),
    )


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        (
            TWO,
            Overrides(context="nope"),
            '--context: context "nope" does not exist; available contexts: dev, lab, prod',
        ),
        (
            TWO,
            Overrides(cluster="nope"),
            '--cluster: cluster "nope" does not exist; available clusters: dev, lab, prod',
        ),
        (TWO, Overrides(user="nope"), '--user: user "nope" does not exist; available users: alice, carol'),
        (
            KubeConfig(),
            Overrides(context="x", server="https://h"),
            '--context: context "x" does not exist; available contexts: none',
        ),
        (
            one(current="gone"),
            Overrides(),
            f'{SRC}: current-context: context "gone" does not exist; available contexts: ctx',
        ),
        (
            kc(
                "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                "contexts: [{name: x, context: {cluster: gone, user: u}}]\ncurrent-context: x"
            ),
            Overrides(),
            f'{SRC}: contexts[x].context.cluster: cluster "gone" does not exist; available clusters: c',
        ),
        (
            kc(
                "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                "contexts: [{name: x, context: {cluster: c, user: gone}}]\ncurrent-context: x"
            ),
            Overrides(),
            f'{SRC}: contexts[x].context.user: user "gone" does not exist; available users: none',
        ),
        (KubeConfig(), Overrides(), "no Kubernetes API server configured: no kubeconfig found and no --server given"),
        (
            one(current='""'),
            Overrides(),
            (
                "no Kubernetes API server configured: no current-context is set and no --context or --server "
                "given; available contexts: ctx"
            ),
        ),
        (one(server='""'), Overrides(), f"{SRC}: clusters[c].cluster.server: is empty"),
        (
            kc("contexts: [{name: x, context: {namespace: a}}]\ncurrent-context: x"),
            Overrides(),
            f"{SRC}: contexts[x].context.cluster: is empty",
        ),
    ],
)
def test_select_errors(config: KubeConfig, overrides: Overrides, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        select(config, overrides)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("server", "normalised"),
    [
        ("https://h:6443", "https://h:6443"),
        ("https://h:6443/", "https://h:6443/"),
        ("https://rancher/k8s/clusters/c-1", "https://rancher/k8s/clusters/c-1"),  # kept for --append-server-path
        ("https://h/p?x=1#frag", "https://h/p"),
        ("HTTPS://H:6443", "https://H:6443"),
        ("https://[::1]:6443", "https://[::1]:6443"),
        ("http://localhost:8080", "http://localhost:8080"),
        # rest.DefaultServerURL as clientcmd calls it: a bare host[:port] means plain http.
        ("localhost:8080", "http://localhost:8080"),
        ("10.0.0.1:6443", "http://10.0.0.1:6443"),
        ("apiserver", "http://apiserver"),
    ],
)
def test_server_url_normalisation(server: str, normalised: str) -> None:
    assert select(KubeConfig(), Overrides(server=server)).cluster.server == normalised


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("ftp://h", '--server: scheme "ftp" is not supported'),
        ("https://", '--server: "https://" is not a URL'),
        ("https://:6443", '--server: "https://:6443" has no host'),
        ("https://h:port", '--server: "https://h:port" is not a URL'),
        ("https://h:70000", '--server: "https://h:70000" is not a URL'),
        ("https://[::1", '--server: "https://[::1" is not a URL'),
        ("h:6443/path", '--server: "h:6443/path" is not a URL'),
        ("https://me:S3CRET@h", "--server: the server URL must not contain user info"),
    ],
)
def test_server_url_errors(server: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        select(KubeConfig(), Overrides(server=server))
    assert str(err.value).startswith(message)
    assert "S3CRET" not in str(err.value)


def test_server_url_error_names_the_kubeconfig_field() -> None:
    with pytest.raises(ConfigError) as err:
        select(one(server="ftp://h"), Overrides())
    assert str(err.value).startswith(f'{SRC}: clusters[c].cluster.server: scheme "ftp"')


def test_plain_http_sends_no_credentials_but_keeps_impersonation() -> None:
    # client_config.go: credentials and TLS settings are only used when the transport is TLS.
    sel = select(TWO, Overrides(context="dev", server="http://insecure:8080"))
    assert sel.cluster == Cluster(server="http://insecure:8080")
    assert sel.user == User(impersonate="root", impersonate_uid="9", impersonate_groups=("admins",))
    assert select(TWO, Overrides(server="localhost:8080", token="t")).user == User()


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        (
            TWO,
            Overrides(insecure_skip_tls_verify=True, certificate_authority="/ca.pem"),
            "--insecure-skip-tls-verify and --certificate-authority cannot be used together",
        ),
        (
            one(cluster="insecure-skip-tls-verify: true\ncertificate-authority: /ca.pem"),
            Overrides(),
            f"{SRC}: clusters[c].cluster: insecure-skip-tls-verify is true and certificate-authority(-data) is set",
        ),
        (
            one(cluster=f"insecure-skip-tls-verify: true\ncertificate-authority-data: {CA_B64}"),
            Overrides(),
            f"{SRC}: clusters[c].cluster: insecure-skip-tls-verify is true and certificate-authority(-data) is set",
        ),
        (
            one(cluster=f"certificate-authority: /ca.pem\ncertificate-authority-data: {CA_B64}"),
            Overrides(),
            f"{SRC}: clusters[c].cluster: certificate-authority and certificate-authority-data are both set",
        ),
        (
            one(cluster="proxy-url: ftp://S3CRET@proxy"),
            Overrides(),
            f'{SRC}: clusters[c].cluster.proxy-url: unsupported scheme "ftp"; must be http, https or socks5',
        ),
        (
            one(user=f"client-certificate: /c.crt\nclient-certificate-data: {CA_B64}\nclient-key: /k"),
            Overrides(),
            f"{SRC}: users[u].user: client-certificate and client-certificate-data are both set",
        ),
        (
            one(user=f"client-certificate: /c.crt\nclient-key: /k\nclient-key-data: {KEY_B64}"),
            Overrides(),
            f"{SRC}: users[u].user: client-key and client-key-data are both set",
        ),
        (
            one(user="client-certificate: /c.crt"),
            Overrides(),
            f"{SRC}: users[u].user: a client certificate needs client-key or client-key-data",
        ),
        (
            KubeConfig(),
            Overrides(server="https://h", client_certificate="/c.crt"),
            "command line: a client certificate needs client-key or client-key-data",
        ),
        (
            one(user=f"token: {TOKEN}\npassword: {PASSWORD}"),
            Overrides(),
            f"{SRC}: users[u].user: more than one authentication method (token and username/password)",
        ),
        (
            one(user="username: admin"),
            Overrides(token=TOKEN),
            f"{SRC}: users[u].user: more than one authentication method (--token and username/password)",
        ),
        (
            one(user="exec: {command: p}\nauth-provider: {name: oidc}"),
            Overrides(),
            f"{SRC}: users[u].user: exec and auth-provider cannot both be set",
        ),
        (
            one(user="as-groups: [admins]"),
            Overrides(),
            f"{SRC}: users[u].user: as-uid, as-groups or as-user-extra (or --as-uid/--as-group) need a user",
        ),
        (
            KubeConfig(),
            Overrides(server="https://h", impersonate_groups=("g",)),
            "command line: as-uid, as-groups or as-user-extra",
        ),
    ],
)
def test_select_validation_errors(config: KubeConfig, overrides: Overrides, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        select(config, overrides)
    assert str(err.value).startswith(message)
    for secret in SECRETS:
        assert secret not in str(err.value)


def test_insecure_and_ca_together_are_fine_over_plain_http() -> None:
    # The TLS check happens in the transport, which plain http never builds.
    cfg = one(server="http://h", cluster="insecure-skip-tls-verify: true\ncertificate-authority: /ca.pem")
    assert select(cfg, Overrides()).cluster == Cluster(server="http://h")


# ---------------------------------------------------------------------------- secrets


def test_repr_never_shows_secrets() -> None:
    cfg = kc(FULL)
    user = cfg.users["alice"]
    sel = Selected("c", "c", "u", "default", cfg.clusters["prod"], user)
    over = Overrides(server="https://h", token=TOKEN)
    for text in (repr(user), repr(sel), repr(over), repr(cfg), str(user), str(sel)):
        for secret in SECRETS:
            assert secret not in text
    assert "auth_provider" not in repr(user)  # auth-provider config holds refresh tokens
    assert "proxy_url" not in repr(cfg.clusters["prod"])  # may hold proxy credentials


SECRET_CONFIGS = [
    f"users: [{{name: u, user: {{token: {TOKEN}, password: [{PASSWORD}]}}}}]",
    f"users: [{{name: u, user: {{token: [{TOKEN}]}}}}]",
    f"users: [{{name: u, user: {{token: {TOKEN}, client-key-data: '{KEY_B64}S3CRET='}}}}]",
    f"users: [{{name: u, user: {{client-key-data: {KEY_B64}, as-groups: {TOKEN}}}}}]",
    f"users: [{{name: u, user: {{password: {PASSWORD}, token: {TOKEN}}}}}, {{name: u, user: {{}}}}]",
    f"users:\n- name: u\n  user:\n    token: {TOKEN}\n   password: {PASSWORD}\n",
    f"users:\n- name: u\n  user: {{token: '{TOKEN}\n",
    (
        f"clusters: [{{name: c, cluster: {{server: 'https://h', proxy-url: 'ftp://u:{PASSWORD}@p'}}}}]\n"
        "contexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x"
    ),
]


@pytest.mark.parametrize("text", SECRET_CONFIGS)
def test_errors_from_configs_with_secrets_do_not_contain_them(text: str) -> None:
    try:
        select(parse(text, SRC), Overrides())
    except ConfigError as exc:
        message = str(exc)
    else:
        pytest.fail("expected a ConfigError")
    for secret in (TOKEN, PASSWORD, KEY_B64, "key-S3CRET-0003"):
        assert secret not in message
