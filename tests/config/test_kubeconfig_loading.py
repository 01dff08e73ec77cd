"""kproxy.config.kubeconfig_loading: which files are read, flags over kubeconfig fields, paths
relative to their kubeconfig, the in-cluster fallback's place, and how fields are named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kproxy.config.flags import Flags
from kproxy.config.kubeconfig_loading import Loaded, load_kubeconfig
from kproxy.config.options import Options
from kproxy.credentials import exec_plugin
from kproxy.credentials import sources as credentials
from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig import Cluster, User
from kproxy.testing import TestPKI
from kproxy.testing.credential_fakes import write_plugin
from tests.config.kubeconfig_files import EXEC, SERVER, build_options, kubeconfig_with


def build(tmp_path: Path, **kw: object) -> Options:
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    return Options.from_flags(flags, environ={"HOME": str(tmp_path)}, cwd=str(tmp_path))


@pytest.mark.parametrize(
    ("names", "kw", "fields"),
    [
        (("k", "u"), {}, ("clusters[k].cluster", "users[u].user", "users[u].user")),
        (("", ""), {}, ("cluster", "user", "user")),
        (("k", "u"), {"user_source": "/c"}, ("clusters[k].cluster", "users[u].user", "/c: users[u].user")),
        (
            ("", ""),
            {"in_cluster": True},
            ("in-cluster configuration", "in-cluster service account", "in-cluster service account"),
        ),
    ],
)
def test_how_fields_are_named(names: tuple[str, str], kw: dict[str, object], fields: tuple[str, str, str]) -> None:
    loaded = Loaded("c", *names, "default", Cluster(server=SERVER), User(), **kw)  # type: ignore[arg-type]
    assert (loaded.cluster_field, loaded.user_field, loaded.user_where) == fields


def test_files_read_and_skipped(tmp_path: Path) -> None:
    path = kubeconfig_with(tmp_path, {"token": "t"})
    env = {"HOME": str(tmp_path / "home"), "KUBECONFIG": f"{tmp_path / 'missing'}:{path}"}
    loaded = load_kubeconfig(Flags(), env, str(tmp_path))  # missing KUBECONFIG entries are skipped
    assert (loaded.cluster_name, loaded.user_name, loaded.user_source) == ("k", "u", str(path))
    assert loaded.environ is env and not loaded.in_cluster
    with pytest.raises(ConfigError, match=f"cannot read kubeconfig {tmp_path / 'missing'}: No such file"):
        load_kubeconfig(Flags(kubeconfig="missing"), env, str(tmp_path))  # --kubeconfig must exist


def test_flags_override_fields_and_resolve_against_the_working_directory(tmp_path: Path) -> None:
    path = kubeconfig_with(tmp_path, {"token": "t"})
    flags = Flags(kubeconfig=str(path), server="https://other:1", token="flag", certificate_authority="ca.crt")
    loaded = load_kubeconfig(flags, {}, str(tmp_path / "cwd"))
    assert loaded.cluster.server == "https://other:1" and loaded.user.token == "flag"
    assert loaded.cluster.certificate_authority == str(tmp_path / "cwd" / "ca.crt")


def test_no_configuration_suggests_the_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path)
    assert "kproxy --demo" in str(info.value)
    assert "localhost:8080" not in str(info.value)


def test_relative_paths_resolve_against_the_kubeconfig(tmp_path: Path, pki: TestPKI) -> None:
    conf = tmp_path / "conf"
    (conf / "pki").mkdir(parents=True)
    (conf / "pki" / "ca.crt").write_bytes(pki.ca_pem)
    (conf / "pki" / "c.crt").write_bytes(pki.client.cert_pem)
    (conf / "pki" / "c.key").write_bytes(pki.client.key_pem)
    (conf / "tok").write_text("relative-token")
    plugin = write_plugin(conf / "bin", "plugin", token="t")
    path = kubeconfig_with(
        conf,
        {"client-certificate": "pki/c.crt", "client-key": "pki/c.key", "tokenFile": "tok"},
        {"server": SERVER, "certificate-authority": "pki/ca.crt"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    opts = Options.from_flags(
        replace(Flags(), kubeconfig=str(path)), environ={"HOME": str(elsewhere)}, cwd=str(elsewhere)
    )
    assert isinstance(opts.upstream.auth, credentials.TokenFile)
    assert opts.upstream.auth.line == b"Authorization: Bearer relative-token\r\n"
    assert isinstance(opts.upstream.tls, credentials.CertFiles)
    assert opts.upstream.tls._cert_path == str(conf / "pki" / "c.crt")
    # An exec command with a path is relative to the kubeconfig too; a bare name uses PATH.
    path = kubeconfig_with(conf, {"exec": {**EXEC, "command": "./bin/plugin"}}, name="exec-config")
    opts = Options.from_flags(
        replace(Flags(), kubeconfig=str(path)), environ={"HOME": str(elsewhere)}, cwd=str(elsewhere)
    )
    assert isinstance(opts.upstream.auth, exec_plugin.ExecPlugin)
    assert opts.upstream.auth._name == str(plugin.path)


def test_impersonation_from_kubeconfig_and_flags(tmp_path: Path) -> None:
    user = {
        "token": "t",
        "as": "jane",
        "as-uid": "7",
        "as-groups": ["dev", "ops"],
        "as-user-extra": {"reason": ["audit"]},
    }
    path = str(kubeconfig_with(tmp_path, user))
    up = build_options(tmp_path, kubeconfig=path).upstream
    assert up.impersonation_headers == (
        b"Impersonate-User: jane\r\nImpersonate-Uid: 7\r\nImpersonate-Group: dev\r\nImpersonate-Group: ops\r\n"
        b"Impersonate-Extra-Reason: audit\r\n"
    )
    # Each flag replaces its own field only (kubectl: mergo with override, field by field).
    up = build_options(tmp_path, kubeconfig=path, as_user="bob", as_group=("admins",)).upstream
    assert up.impersonation_headers == (
        b"Impersonate-User: bob\r\nImpersonate-Uid: 7\r\nImpersonate-Group: admins\r\n"
        b"Impersonate-Extra-Reason: audit\r\n"
    )


def test_a_kubeconfig_beats_in_cluster(tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token")
    env = {
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KPROXY_SERVICE_ACCOUNT_DIR": str(sa),
    }
    up = build_options(tmp_path, env, kubeconfig=str(kubeconfig_with(tmp_path, {"token": "t"}))).upstream
    assert up.host == "127.0.0.1"
    up = build_options(tmp_path, env, server="https://127.0.0.2:6443", insecure_skip_tls_verify=True).upstream
    assert up.host == "127.0.0.2" and up.auth is None
