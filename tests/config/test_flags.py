"""kproxy.config.flags: one table. Every Flags field carries its flag; the defaults are
kubectl's; Flags stays the frozen, keyword-built dataclass embedders use."""

from __future__ import annotations

import dataclasses

import pytest

import kproxy
from kproxy.config.flags import FLAG_TABLE, Flags


def test_every_kubectl_proxy_flag_is_in_the_table() -> None:
    names = {f.name for f in FLAG_TABLE}
    shorts = {f.short: f.name for f in FLAG_TABLE if f.short}
    assert {
        "port",
        "address",
        "unix-socket",
        "www",
        "www-prefix",
        "api-prefix",
        "accept-hosts",
        "accept-paths",
        "reject-paths",
        "reject-methods",
        "disable-filter",
        "keepalive",
        "append-server-path",
        "kubeconfig",
        "context",
        "cluster",
        "user",
        "server",
        "token",
        "certificate-authority",
        "client-certificate",
        "client-key",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "as",
        "as-group",
        "as-uid",
    } <= names
    assert shorts == {"p": "port", "u": "unix-socket", "w": "www", "P": "www-prefix", "s": "server"}


def test_the_table_is_the_fields_in_order() -> None:
    assert [f.dest for f in FLAG_TABLE] == [f.name for f in dataclasses.fields(Flags)]
    assert [f.default for f in FLAG_TABLE] == [getattr(Flags(), f.dest) for f in FLAG_TABLE]
    assert len({f.name for f in FLAG_TABLE}) == len(FLAG_TABLE)
    assert all(f.help and f.help == f.help.strip() for f in FLAG_TABLE)


@pytest.mark.parametrize(
    ("dest", "name", "kind"),
    [
        ("port", "port", "int"),
        ("as_user", "as", "str"),
        ("as_group", "as-group", "list"),
        ("keepalive", "keepalive", "duration"),
        ("connect_timeout", "connect-timeout", "duration"),
        ("read_header_timeout", "read-header-timeout", "duration"),
        ("idle_timeout", "idle-timeout", "duration"),
        ("disable_filter", "disable-filter", "bool"),
        ("insecure_skip_tls_verify", "insecure-skip-tls-verify", "bool"),
        ("custom_ca_trust_certificates", "custom-ca-trust-certificates", "str"),
        # kube-rbac-proxy's names for the TLS listener.
        ("tls_cert_file", "tls-cert-file", "str"),
        ("tls_private_key_file", "tls-private-key-file", "str"),
        ("tls_min_version", "tls-min-version", "str"),
        ("tls_cipher_suites", "tls-cipher-suites", "list"),
        ("client_ca_file", "client-ca-file", "str"),
        ("client_identity", "client-identity", "str"),
    ],
)
def test_names_and_kinds(dest: str, name: str, kind: str) -> None:
    (flag,) = [f for f in FLAG_TABLE if f.dest == dest]
    assert (flag.name, flag.kind) == (name, kind)


def test_flags_is_the_public_frozen_dataclass() -> None:
    assert kproxy.Flags is Flags
    flags = kproxy.Flags(port=0, kubeconfig="/k", as_group=("a",))
    assert (flags.port, flags.kubeconfig, flags.as_group, flags.keepalive) == (0, "/k", ("a",), 30.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        flags.port = 1  # type: ignore[misc]
    assert "s3cret" not in repr(Flags(token="s3cret"))
