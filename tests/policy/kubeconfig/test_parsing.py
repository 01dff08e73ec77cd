"""kproxy.policy.kubeconfig.parsing: one file's text → KubeConfig, as tables of input → result."""

from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest
import yaml

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig.model import Cluster, Context, KubeConfig, User
from kproxy.policy.kubeconfig.parsing import parse
from tests.policy.kubeconfig.samples import CA_B64, CA_PEM, FULL, KEY_PEM, PASSWORD, SRC, TOKEN, kc


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


# -- how the text is read: JSON as JSON, YAML by libyaml, errors by pyyaml ------------------


def _full_as_json(indent: int | str | None) -> str:
    return json.dumps(yaml.safe_load(textwrap.dedent(FULL)), indent=indent)


@pytest.mark.parametrize("indent", [None, 1, 4])
def test_json_reads_as_its_yaml(indent: int | None) -> None:
    assert parse(_full_as_json(indent), SRC) == kc(FULL)


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ('{"clusters": [{"name": "a", "cluster": {"server": "https:\\/\\/h\\u00e9"}}]}', "https://h\u00e9"),
        # Numbers JSON and YAML 1.1 read differently go to YAML, as before: 1e5 is a string there.
        ('{"clusters": [{"name": "a", "cluster": {"server": 1e5}}]}', "1e5"),
        ('{"clusters": [{"name": "a", "cluster": {"server": NaN}}]}', "NaN"),
        # A YAML flow mapping that is not JSON is YAML.
        ("{clusters: [{name: a, cluster: {server: 'https://h'}}]}", "https://h"),
    ],
)
def test_json_and_flow_yaml_read_as_pyyaml_reads_them(text: str, server: str) -> None:
    assert parse(text, SRC).clusters["a"].server == server == yaml.safe_load(text)["clusters"][0]["cluster"]["server"]


def test_json_indented_with_tabs_is_read() -> None:
    # Go's json.MarshalIndent(v, "", "\t") writes this; pyyaml's own reader refused it.
    assert parse(_full_as_json("\t"), SRC) == kc(FULL)


def test_without_libyaml_the_same_config(monkeypatch: pytest.MonkeyPatch) -> None:
    with_libyaml = kc(FULL)
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    assert kc(FULL) == with_libyaml
