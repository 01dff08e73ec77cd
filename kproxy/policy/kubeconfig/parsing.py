"""One kubeconfig file's text → a :class:`~kproxy.policy.kubeconfig.model.KubeConfig`.

client-go's loader.go (``LoadFromFile``, ``ResolveLocalPaths``) and the v1 Config decoding:
``parse(text, source)`` base64-decodes the ``*-data`` fields and makes relative paths
absolute against the file's directory; ``source`` should be an absolute path. An empty
file is an empty config.

Every bad input raises ``ConfigError`` with one line naming the file, the field path
(``users[alice].user.client-key-data``) and what is wrong, never the values of tokens,
passwords or keys (YAML errors give the position only, not pyyaml's snippet of the line).

Reading the text (``docs/startup.md`` §3): a file that is JSON is read as JSON, and pyyaml
is not even imported; YAML is read by libyaml (pyyaml's ``CSafeLoader``, some twenty
times faster) where pyyaml has it, with pyyaml's own reader as the judge of a file
libyaml refuses, so errors read as they always have.

Pure: the caller reads the file. Deviation from client-go (marked below): entries need a
non-empty name.
"""

from __future__ import annotations

import base64
import binascii
import json
import os.path
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from kproxy.errors import ConfigError
from kproxy.policy.kubeconfig.model import Cluster, Context, KubeConfig, User

__all__ = ["parse"]

_KINDS = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)  # never the value itself


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Parser:
    """Decodes the v1 Config shapes the way client-go's JSON decoding would."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.base = os.path.dirname(source)

    def fail(self, path: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {path}: {what}")

    def typed(self, obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any) -> Any:
        # encoding/json: null leaves the zero value; any other type mismatch is an error.
        value = obj.get(key)
        if value is None:
            return default
        if type(value) is not kind and not (kind is dict and isinstance(value, dict)):
            where = f"{path}.{key}" if path else key
            self.fail(where, f"must be {_kind(kind())}, not {_kind(value)}")
        return value

    def string(self, obj: Mapping[str, Any], key: str, path: str) -> str:
        return str(self.typed(obj, key, path, str, ""))

    def resolve(self, value: str) -> str:
        # loader.go ResolvePaths: absolute paths stay, relative ones join the file's directory.
        if os.path.isabs(value) or not self.base:
            return value
        return os.path.normpath(os.path.join(self.base, value))

    def path(self, obj: Mapping[str, Any], key: str, path: str) -> str | None:
        return self.resolve(value) if (value := self.string(obj, key, path)) else None

    def data(self, obj: Mapping[str, Any], key: str, path: str) -> bytes | None:
        # []byte fields are standard base64 in JSON; Go's decoder skips only \r and \n.
        text = self.string(obj, key, path).replace("\r", "").replace("\n", "")
        if not text:
            return None
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:  # the reason never quotes the input
            self.fail(f"{path}.{key}", f"is not valid base64 ({exc}); use `base64 -w0 FILE`")

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(path, f"must be a list of strings, not {_kind(value)}")
        return tuple(value)

    def named(self, doc: Mapping[str, Any], key: str, inner: str, prefix: str = "") -> dict[str, Any]:
        """A v1 named list, ``[{name: N, <inner>: {...}}]`` → {N: inner}."""
        where = f"{prefix}.{key}" if prefix else key
        items = doc.get(key)
        if items is None:
            return {}
        if not isinstance(items, list):
            self.fail(where, f"must be a list of {{name: ..., {inner}: ...}} entries, not {_kind(items)}")
        out: dict[str, Any] = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{where}[{i}]", f"must be a mapping with name and {inner}, not {_kind(item)}")
            name = item.get("name")
            if not isinstance(name, str) or not name:  # Deviation: client-go accepts ""
                self.fail(f"{where}[{i}].name", "must be a non-empty string: every entry needs one")
            if name in out:  # api/v1/conversion.go: 'duplicate name "x" in list'
                self.fail(f"{where}[{name}]", "is defined twice in this file; names must be unique")
            # Extensions are free-form (runtime.RawExtension); the others decode into structs.
            out[name] = _freeze(item.get(inner)) if prefix else self.typed(item, inner, f"{key}[{name}]", dict, {})
        return out

    def cluster(self, c: Mapping[str, Any], p: str) -> Cluster:
        return Cluster(
            server=self.string(c, "server", p),
            certificate_authority=self.path(c, "certificate-authority", p),
            certificate_authority_data=self.data(c, "certificate-authority-data", p),
            insecure_skip_tls_verify=self.typed(c, "insecure-skip-tls-verify", p, bool, False),
            tls_server_name=self.string(c, "tls-server-name", p),
            proxy_url=self.string(c, "proxy-url", p),
            disable_compression=self.typed(c, "disable-compression", p, bool, False),
            extensions=MappingProxyType(self.named(c, "extensions", "extension", p)),
        )

    def user(self, u: Mapping[str, Any], p: str) -> User:
        exec_ = self.typed(u, "exec", p, dict, None)
        command = exec_ and exec_.get("command")
        if isinstance(command, str) and os.sep in command:
            # GetAuthInfoFileReferences: the command is resolved only if it is not PATH based.
            exec_ = {**exec_, "command": self.resolve(command)}
        provider = self.typed(u, "auth-provider", p, dict, None)
        extra = self.typed(u, "as-user-extra", p, dict, {})
        return User(
            token=self.string(u, "token", p),
            token_file=self.path(u, "tokenFile", p),
            username=self.string(u, "username", p),
            password=self.string(u, "password", p),
            client_certificate=self.path(u, "client-certificate", p),
            client_certificate_data=self.data(u, "client-certificate-data", p),
            client_key=self.path(u, "client-key", p),
            client_key_data=self.data(u, "client-key-data", p),
            impersonate=self.string(u, "as", p),
            impersonate_uid=self.string(u, "as-uid", p),
            impersonate_groups=self.strings(u.get("as-groups"), f"{p}.as-groups"),
            impersonate_extra=tuple((str(k), self.strings(v, f"{p}.as-user-extra.{k}")) for k, v in extra.items()),
            exec=None if exec_ is None else _freeze(exec_),
            auth_provider=None if provider is None else _freeze(provider),
        )

    def context(self, c: Mapping[str, Any], p: str) -> Context:
        s = self.string
        return Context(s(c, "cluster", p), s(c, "user", p), s(c, "namespace", p))


def _not_yaml_alike(literal: str) -> Any:
    # Where JSON and pyyaml's YAML 1.1 read a number differently (1e5: a float in JSON, a
    # string in YAML 1.1; NaN, Infinity), the text goes to YAML, which read it before.
    raise ValueError(literal)


def _float(literal: str) -> float:
    return float(literal) if "e" not in literal and "E" not in literal else _not_yaml_alike(literal)


def _load(text: str, source: str) -> Any:
    """The file's data: JSON by ``json``, the rest by YAML (libyaml first). Raises ConfigError."""
    if text.lstrip(" \t\r\n")[:1] == "{":  # JSON written by a tool (kubectl writes YAML)
        try:
            return json.loads(text, parse_float=_float, parse_constant=_not_yaml_alike)
        except ValueError:  # not JSON after all (a YAML flow mapping, say): YAML reads it
            pass
    import yaml  # only for YAML: ~10 ms of imports (docs/startup.md §3)

    fast = getattr(yaml, "CSafeLoader", None)  # pyyaml built with libyaml
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # the safe loader, in C
        except yaml.YAMLError:
            pass  # pyyaml's own reader says what is wrong, as it always has
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Only the position and the problem: pyyaml's snippet of the line could quote a secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{source}: invalid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # reader errors: a character code and a position
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


def parse(text: str, source: str) -> KubeConfig:
    """One kubeconfig file's text → ``KubeConfig``. An empty file is an empty config."""
    doc = _load(text, source)
    if doc is None:  # loader.go Load: no data is the empty default config
        return KubeConfig()
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: must be a mapping (apiVersion: v1, kind: Config), not {_kind(doc)}")
    p = _Parser(source)
    # The codec decodes v1 Config only; other versions and kinds are not registered.
    if p.string(doc, "apiVersion", "") not in ("", "v1"):
        p.fail("apiVersion", 'must be "v1"')
    if p.string(doc, "kind", "") not in ("", "Config"):
        p.fail("kind", 'must be "Config"')
    clusters = {n: p.cluster(c, f"clusters[{n}].cluster") for n, c in p.named(doc, "clusters", "cluster").items()}
    users = {n: p.user(u, f"users[{n}].user") for n, u in p.named(doc, "users", "user").items()}
    contexts = {n: p.context(c, f"contexts[{n}].context") for n, c in p.named(doc, "contexts", "context").items()}
    current = p.string(doc, "current-context", "")
    sources = {
        f"{kind}[{name}]": source
        for kind, table in (("clusters", clusters), ("users", users), ("contexts", contexts))
        for name in table
    }
    if current:
        sources["current-context"] = source
    return KubeConfig(
        MappingProxyType(clusters),
        MappingProxyType(users),
        MappingProxyType(contexts),
        current,
        MappingProxyType(sources),
    )
