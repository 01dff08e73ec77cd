"""kproxy.policy.kubeconfig.selection: kubeconfig + kubectl's flags → the cluster and user, as tables."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import pytest

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig.model import Cluster, KubeConfig, User
from kproxy.policy.kubeconfig.parsing import parse
from kproxy.policy.kubeconfig.selection import Overrides, Selected, select
from tests.policy.kubeconfig.samples import CA_B64, FULL, KEY_B64, PASSWORD, SECRETS, SRC, TOKEN, kc


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
