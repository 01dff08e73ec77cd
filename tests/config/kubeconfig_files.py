"""Kubeconfig files written for the config tests, and Options built from them with a clean
environment (HOME under tmp_path, PATH kept for exec plugins)."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from kproxy.config.flags import Flags
from kproxy.config.options import Options

SERVER = "https://127.0.0.1:6443"
V1 = "client.authentication.k8s.io/v1"
EXEC = {"command": "p", "apiVersion": V1, "interactiveMode": "Never"}


def build_options(tmp_path: Path, environ: dict[str, str] | None = None, /, **kw: object) -> Options:
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "")}
    return Options.from_flags(flags, environ={**env, **(environ or {})}, cwd=str(tmp_path))


def kubeconfig_with(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None, name: str = "config"
) -> Path:
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": cluster or {"server": SERVER, "insecure-skip-tls-verify": True}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


def exec_kubeconfig(tmp_path: Path, server: str, ca_pem: bytes, command: str, name: str = "config") -> Path:
    """A kubeconfig whose user is an exec plugin (``command``, client.authentication v1,
    never interactive) for the TLS server at ``server`` signed by ``ca_pem``."""
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}
    return kubeconfig_with(tmp_path, {"exec": {**EXEC, "command": command}}, cluster, name)


def build(tmp_path: Path, **kw: object) -> Options:
    """Options from ``kw`` (flag names), HOME at tmp_path and no other environment."""
    flags = replace(Flags(), **kw)  # type: ignore[arg-type]
    return Options.from_flags(flags, environ={"HOME": str(tmp_path)}, cwd=str(tmp_path))


def write_kubeconfig(tmp_path: Path, user: str, cluster_extra: str = "") -> Path:
    """A kubeconfig for SERVER whose user section is ``user`` (indented YAML lines)."""
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {SERVER}\n{cluster_extra}"
        "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
        f"users:\n- name: u\n  user:\n{user}"
    )
    return path
