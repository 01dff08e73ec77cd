"""The ``client.authentication.k8s.io`` exec credential protocol: pure data and checks.

In: the kubeconfig's ``exec`` mapping, the cluster it is for, and a plugin's stdout.
Out: a validated :class:`ExecConfig` (clientcmd's validation.go rules and wording), the
``KUBERNETES_EXEC_INFO`` document (:func:`exec_info`) and the credential a plugin
returned (:class:`ExecResult`). :mod:`kproxy.credentials.exec_plugin` runs plugins with these.

Errors never quote a plugin's output, arguments or environment: they may hold secrets.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kproxy.errors import ConfigError

__all__ = [
    "API_VERSIONS",
    "EXEC_EXTENSION",
    "ClusterInfo",
    "ExecConfig",
    "ExecResult",
    "InteractiveMode",
    "exec_info",
    "is_interactive",
    "parse_config",
    "parse_output",
]

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# The cluster extension client-go passes to the plugin as spec.cluster.config.
EXEC_EXTENSION = "client.authentication.k8s.io/exec"

InteractiveMode = Literal["Never", "IfAvailable", "Always"]


@dataclass(frozen=True)
class ExecConfig:
    command: str
    api_version: str
    interactive_mode: InteractiveMode
    args: tuple[str, ...] = field(default=(), repr=False)  # may carry secrets
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    install_hint: str = ""
    provide_cluster_info: bool = False


def parse_config(raw: Mapping[str, Any], user_name: str, where: str) -> ExecConfig:
    """Validate a kubeconfig ``exec`` mapping like clientcmd's validation.go.

    ``where`` prefixes messages (file and field path); ``user_name`` appears where
    kubectl's own wording names the user.
    """

    def fail(what: str) -> ConfigError:
        return ConfigError(f"{where}: {what}")

    def string(key: str) -> str:
        value = raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise fail(f"{key} must be a string")
        return value

    command = string("command")
    api_version = string("apiVersion")
    install_hint = string("installHint")
    mode = string("interactiveMode")
    args = raw.get("args") or ()
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        raise fail("args must be a list of strings")
    env_items = raw.get("env") or ()
    if not isinstance(env_items, (list, tuple)):
        raise fail("env must be a list of {name: ..., value: ...} entries")
    env: list[tuple[str, str]] = []
    for i, item in enumerate(env_items):
        if not isinstance(item, Mapping):
            raise fail(f"env[{i}] must be a mapping with name and value")
        name, value = item.get("name") or "", item.get("value") or ""
        if not isinstance(name, str) or not isinstance(value, str):
            raise fail(f"env[{i}]: name and value must be strings")
        if not name:
            raise fail(f"env variable name must be specified for {user_name} to use exec authentication plugin")
        env.append((name, value))
    provide = raw.get("provideClusterInfo", False)
    if not isinstance(provide, bool):
        raise fail("provideClusterInfo must be true or false")
    if not command:
        raise fail(f"command must be specified for {user_name} to use exec authentication plugin")
    if not api_version:
        raise fail(f"apiVersion must be specified for {user_name} to use exec authentication plugin")
    if not mode and api_version.endswith("/v1beta1"):
        mode = "IfAvailable"  # api/v1 defaults: only v1beta1 (and v1alpha1) default it
    if not mode:
        raise fail(
            f"interactiveMode must be specified for {user_name} to use exec authentication plugin "
            "(Never, IfAvailable or Always)"
        )
    if mode not in ("Never", "IfAvailable", "Always"):
        raise fail(f'invalid interactiveMode for {user_name}: "{mode}"; use Never, IfAvailable or Always')
    if api_version not in API_VERSIONS:
        raise fail(f'exec plugin: invalid apiVersion "{api_version}"; use {" or ".join(API_VERSIONS)}')
    interactive_mode: InteractiveMode = mode  # type: ignore[assignment]
    return ExecConfig(command, api_version, interactive_mode, tuple(args), tuple(env), install_hint, provide)


def is_interactive(mode: InteractiveMode, stdin_is_terminal: bool, where: str) -> bool:
    """exec.go isInteractive. kproxy decides once, at start-up: its stdin does not change.

    ``Always`` without a terminal fails at start-up here (client-go fails each request
    with the same words).
    """
    if mode == "Never":
        return False
    if mode == "IfAvailable":
        return stdin_is_terminal
    if not stdin_is_terminal:
        raise ConfigError(
            f"{where}: exec plugin cannot support interactive mode: standard input is not a "
            "terminal (interactiveMode is Always; start kproxy from a terminal, or use "
            "IfAvailable or Never)"
        )
    return True


@dataclass(frozen=True)
class ClusterInfo:
    """``spec.cluster`` of KUBERNETES_EXEC_INFO (client.authentication.k8s.io Cluster)."""

    server: str
    tls_server_name: str = ""
    insecure_skip_tls_verify: bool = False
    certificate_authority_data: bytes | None = None
    proxy_url: str = field(default="", repr=False)
    disable_compression: bool = False
    config: Any = None  # the cluster's client.authentication.k8s.io/exec extension


def exec_info(api_version: str, cluster: ClusterInfo | None, interactive: bool) -> str:
    """The ExecCredential passed in KUBERNETES_EXEC_INFO (fields and omitempty as in Go)."""
    spec: dict[str, Any] = {}
    if cluster is not None:
        c: dict[str, Any] = {"server": cluster.server}
        if cluster.tls_server_name:
            c["tls-server-name"] = cluster.tls_server_name
        if cluster.insecure_skip_tls_verify:
            c["insecure-skip-tls-verify"] = True
        if cluster.certificate_authority_data:
            c["certificate-authority-data"] = base64.b64encode(cluster.certificate_authority_data).decode()
        if cluster.proxy_url:
            c["proxy-url"] = cluster.proxy_url
        if cluster.disable_compression:
            c["disable-compression"] = True
        if cluster.config is not None:
            c["config"] = _thaw(cluster.config)
        spec["cluster"] = c
    spec["interactive"] = interactive
    return json.dumps({"kind": "ExecCredential", "apiVersion": api_version, "spec": spec}, separators=(",", ":"))


def _thaw(value: Any) -> Any:
    # kubeconfig.py freezes mappings and lists (MappingProxyType, tuples).
    if isinstance(value, Mapping):
        return {str(k): _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ExecResult:
    token: str = field(default="", repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    expires: float | None = None  # Unix time; None: valid for the life of the process


def parse_output(stdout: bytes, api_version: str) -> ExecResult:
    """The plugin's stdout → ExecResult. Raises ValueError whose message quotes no output."""
    try:
        doc = json.loads(stdout)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        pos = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        what = "no output" if not stdout.strip() else f"not JSON ({reason}{pos})"
        raise ValueError(f"decoding stdout: {what}; an ExecCredential was expected") from None
    if not isinstance(doc, dict):
        raise ValueError("decoding stdout: couldn't get version/kind; an ExecCredential object was expected")
    got_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(got_version, str) or not got_version:
        raise ValueError("decoding stdout: Object 'apiVersion' is missing")
    if not isinstance(kind, str) or not kind:
        raise ValueError("decoding stdout: Object 'Kind' is missing")
    if got_version != api_version:
        raise ValueError(
            f"exec plugin is configured to use API version {api_version}, plugin returned version {got_version[:100]}"
        )
    if kind != "ExecCredential":
        raise ValueError(f'decoding stdout: no kind "{kind[:100]}" is registered for version "{api_version}"')
    status = doc.get("status")
    if status is None:
        raise ValueError("exec plugin didn't return a status field")
    if not isinstance(status, dict):
        raise ValueError("decoding stdout: status must be an object")

    def text(key: str) -> str:
        value = status.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"decoding stdout: status.{key} must be a string")
        return value

    token, cert, key = text("token"), text("clientCertificateData"), text("clientKeyData")
    if not token and not cert and not key:
        raise ValueError("exec plugin didn't return a token or cert/key pair")
    if bool(cert) != bool(key):
        raise ValueError("exec plugin returned only certificate or key, not both")
    expires = None
    stamp = text("expirationTimestamp")
    if stamp:
        try:
            moment = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            raise ValueError("decoding stdout: status.expirationTimestamp is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise ValueError("decoding stdout: status.expirationTimestamp has no time zone (RFC 3339)")
        expires = moment.timestamp()
    return ExecResult(token, cert.encode() if cert else None, key.encode() if key else None, expires)
