"""kubeconfig files → the cluster and user that kubectl would talk to and as whom.

Pure: callers pass text, paths and mappings in; nothing here reads files or the
environment. The flow follows client-go's ``tools/clientcmd``:

* ``kubeconfig_paths(flag, environ, home)`` → which files to read (loader.go).
* ``parse(text, source)`` → one ``KubeConfig``: ``*-data`` fields base64-decoded,
  relative paths made absolute against the file's directory (loader.go
  ``ResolveLocalPaths``). ``source`` should be an absolute path.
* ``merge(configs)`` → one ``KubeConfig`` (loader.go ``Load``: first file wins).
* ``select(config, Overrides(...))`` → ``Selected`` cluster + user with kubectl's global
  flags applied (client_config.go ``getContext``/``getCluster``/``getAuthInfo``,
  validation.go ``ConfirmUsable``).

Every bad input raises ``ConfigError`` with one line naming the file, the field path
(``users[alice].user.client-key-data``) and what is wrong. Messages name fields,
never the values of tokens, passwords or keys.

Where kproxy knowingly differs from kubectl (each is marked "Deviation" below): no server
is an error, not a silent http://localhost:8080; a context naming a missing cluster or
user is an error; --token drops the kubeconfig's tokenFile; entries need a name; a server
URL with user info is refused. As in kubectl, a bare ``host:port`` server means plain http,
and over plain http no credentials or TLS settings are used (only impersonation).
"""

from __future__ import annotations

import base64
import binascii
import os.path
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import yaml

from kproxy.errors import ConfigError

__all__ = [
    "Cluster",
    "Context",
    "KubeConfig",
    "Overrides",
    "Selected",
    "User",
    "kubeconfig_paths",
    "merge",
    "parse",
    "select",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_T = TypeVar("_T")


def _empty() -> Mapping[str, Any]:
    return _EMPTY  # a shared read-only default (dataclasses refuse unhashable defaults)


@dataclass(frozen=True)
class Cluster:
    server: str = ""
    certificate_authority: str | None = None  # absolute path
    certificate_authority_data: bytes | None = None  # decoded PEM
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    proxy_url: str = field(default="", repr=False)  # may carry proxy credentials
    disable_compression: bool = False
    # name → extension; "client.authentication.k8s.io/exec" is the exec plugin's cluster config
    extensions: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True)
class User:
    token: str = field(default="", repr=False)
    token_file: str | None = None  # absolute path
    username: str = ""
    password: str = field(default="", repr=False)
    client_certificate: str | None = None  # absolute path
    client_certificate_data: bytes | None = None  # decoded PEM
    client_key: str | None = None  # absolute path
    client_key_data: bytes | None = field(default=None, repr=False)  # decoded PEM
    impersonate: str = ""  # as
    impersonate_uid: str = ""  # as-uid
    impersonate_groups: tuple[str, ...] = ()  # as-groups
    impersonate_extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # as-user-extra
    # Raw, read-only (dicts → mappings, lists → tuples). Hidden from repr: they hold secrets.
    exec: Mapping[str, Any] | None = field(default=None, repr=False)
    auth_provider: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Context:
    cluster: str = ""
    user: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class KubeConfig:
    clusters: Mapping[str, Cluster] = field(default_factory=_empty)
    users: Mapping[str, User] = field(default_factory=_empty)
    contexts: Mapping[str, Context] = field(default_factory=_empty)
    current_context: str = ""
    # Where each entry came from (client-go's LocationOfOrigin), for messages:
    # "clusters[NAME]", "users[NAME]", "contexts[NAME]", "current-context" → file path.
    sources: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True)
class Overrides:
    """kubectl's global flags; "", None or () means not given. Paths are already absolute."""

    context: str = ""
    cluster: str = ""
    user: str = ""
    server: str = ""
    token: str = field(default="", repr=False)
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    # False acts like None: client-go cannot tell an explicit false from unset.
    insecure_skip_tls_verify: bool | None = None
    tls_server_name: str = ""
    impersonate: str = ""
    impersonate_uid: str = ""
    impersonate_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selected:
    context_name: str
    cluster_name: str
    user_name: str
    namespace: str
    cluster: Cluster
    user: User


# --------------------------------------------------------------------------- paths


def kubeconfig_paths(flag: str | None, environ: Mapping[str, str], home: str | None) -> tuple[list[str], bool]:
    """(files to read in kubectl's order, whether the one file was given explicitly).

    loader.go: an explicit --kubeconfig must exist; otherwise KUBECONFIG is split with
    filepath.SplitList and deduplicated keeping the first, empty entries are skipped and
    missing files are skipped by the caller; only an unset or empty KUBECONFIG falls back to
    ~/.kube/config (so KUBECONFIG=":" means no files at all).
    """
    if flag:
        return [flag], True
    env = environ.get("KUBECONFIG", "")
    if env:
        return list(dict.fromkeys(p for p in env.split(os.pathsep) if p)), False
    return ([os.path.join(home, ".kube", "config")] if home else []), False


# --------------------------------------------------------------------------- parse

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


def parse(text: str, source: str) -> KubeConfig:
    """One kubeconfig file's text → ``KubeConfig``. An empty file is an empty config."""
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Only the position and the problem: pyyaml's snippet of the line could quote a secret.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{source}: invalid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # reader errors: a character code and a position
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None
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


# --------------------------------------------------------------------------- merge


def merge(configs: Sequence[KubeConfig]) -> KubeConfig:
    """kubectl's KUBECONFIG merge (loader.go Load).

    For clusters, users and contexts the first file to define a name wins, whole entry
    (mergo never overwrites pointer map values); current-context is merged in reverse
    order with override, so the first non-empty one wins.
    """
    sources: dict[str, str] = {}

    def first(kind: str, tables: list[Mapping[str, _T]]) -> Mapping[str, _T]:
        out: dict[str, _T] = {}
        for cfg, table in zip(configs, tables):
            for name, value in table.items():
                if name not in out:
                    out[name] = value
                    if (key := f"{kind}[{name}]") in cfg.sources:
                        sources[key] = cfg.sources[key]
        return MappingProxyType(out)

    clusters = first("clusters", [c.clusters for c in configs])
    users = first("users", [c.users for c in configs])
    contexts = first("contexts", [c.contexts for c in configs])
    current = next((c for c in configs if c.current_context), KubeConfig())
    if "current-context" in current.sources:
        sources["current-context"] = current.sources["current-context"]
    return KubeConfig(clusters, users, contexts, current.current_context, MappingProxyType(sources))


# --------------------------------------------------------------------------- select


def select(config: KubeConfig, overrides: Overrides) -> Selected:
    """The cluster and user kubectl would use, with its global flags applied."""
    o = overrides
    # getContextName: --context, else current-context; either way it must exist
    # (getContext: 'context "x" does not exist'; ConfirmUsable: errContextNotFound).
    ctx_name = o.context or config.current_context
    if ctx_name and ctx_name not in config.contexts:
        where = f"{_origin(config, 'current-context')}: current-context"
        raise ConfigError(
            f'{"--context" if o.context else where}: context "{ctx_name}" does not '
            f"exist; {_available(config, 'contexts')}"
        )
    ctx = config.contexts.get(ctx_name, Context())
    cluster_name, user_name = o.cluster or ctx.cluster, o.user or ctx.user
    _must_exist(config, "clusters", cluster_name, o.cluster and "--cluster", ctx_name)
    _must_exist(config, "users", user_name, o.user and "--user", ctx_name)
    cluster = _apply_cluster(config.clusters.get(cluster_name, Cluster()), o)
    user = _apply_user(config.users.get(user_name, User()), o)
    cwhere, uwhere = _where(config, "clusters", cluster_name), _where(config, "users", user_name)
    if not cluster.server:
        raise ConfigError(_no_server(config, ctx_name, cluster_name, cwhere))
    server, tls = _server_url(cluster.server, "--server" if o.server else f"{cwhere}.server")
    cluster = replace(cluster, server=server)
    _validate(cluster, user, o, cwhere, uwhere)
    if not tls:
        # ClientConfig: "only try to read the auth information if we are secure": over plain
        # http neither credentials nor TLS settings are used; impersonation is set before that.
        cluster = Cluster(
            server=server,
            proxy_url=cluster.proxy_url,
            disable_compression=cluster.disable_compression,
            extensions=cluster.extensions,
        )
        user = User(
            impersonate=user.impersonate,
            impersonate_uid=user.impersonate_uid,
            impersonate_groups=user.impersonate_groups,
            impersonate_extra=user.impersonate_extra,
        )
    elif cluster.insecure_skip_tls_verify and (cluster.certificate_authority or cluster.certificate_authority_data):
        # transport.TLSConfigFor: "specifying a root certificates file with the insecure flag
        # is not allowed".
        if o.insecure_skip_tls_verify and o.certificate_authority:
            raise ConfigError(
                "--insecure-skip-tls-verify and --certificate-authority cannot be "
                "used together: a CA is only used when verifying; drop one"
            )
        raise ConfigError(
            f"{cwhere}: insecure-skip-tls-verify is true and "
            "certificate-authority(-data) is set: a CA is only used when verifying; "
            "remove one of them"
        )
    # Namespace(): an empty namespace means "default".
    return Selected(ctx_name, cluster_name, user_name, ctx.namespace or "default", cluster, user)


def _origin(config: KubeConfig, key: str) -> str:
    return config.sources.get(key, "kubeconfig")


def _available(config: KubeConfig, kind: str) -> str:
    names: Mapping[str, object] = getattr(config, kind)
    return f"available {kind}: {', '.join(sorted(names)) or 'none'}"


def _where(config: KubeConfig, kind: str, name: str) -> str:
    """The field path prefix for messages about the selected cluster or user."""
    if not name:
        return "command line"  # nothing came from a kubeconfig: the values are flags
    return f"{_origin(config, f'{kind}[{name}]')}: {kind}[{name}].{kind[:-1]}"


def _must_exist(config: KubeConfig, kind: str, name: str, flag: str, ctx_name: str) -> None:
    if not name or name in getattr(config, kind):
        return
    noun = kind[:-1]
    if flag:  # getCluster/getAuthInfo: a name given on the command line must exist
        raise ConfigError(f'{flag}: {noun} "{name}" does not exist; {_available(config, kind)}')
    # Deviation: client-go tolerates a context naming a missing cluster or user (and then
    # talks to localhost:8080, or without credentials); kproxy reports the dangling name.
    raise ConfigError(
        f"{_origin(config, f'contexts[{ctx_name}]')}: contexts[{ctx_name}].context."
        f'{noun}: {noun} "{name}" does not exist; {_available(config, kind)}'
    )


def _apply_cluster(c: Cluster, o: Overrides) -> Cluster:
    # getCluster: non-empty override fields overwrite (mergo WithOverride); false cannot.
    insecure = c.insecure_skip_tls_verify or bool(o.insecure_skip_tls_verify)
    c = replace(c, server=o.server or c.server, insecure_skip_tls_verify=insecure)
    if o.insecure_skip_tls_verify or o.certificate_authority:
        # "An override of --insecure-skip-tls-verify=true and no accompanying CA/CA data should
        # clear already-set CA/CA data"; "an override of --certificate-authority should also
        # override TLS skip settings and CA data".
        c = replace(
            c,
            insecure_skip_tls_verify=bool(o.insecure_skip_tls_verify),
            certificate_authority=o.certificate_authority or None,
            certificate_authority_data=None,
        )
    if o.tls_server_name or o.server:
        # "setting a --server will effectively clear the KUBECONFIG value of tls-server-name".
        c = replace(c, tls_server_name=o.tls_server_name)
    return c


def _apply_user(u: User, o: Overrides) -> User:
    if o.token:
        # Deviation: client-go keeps the kubeconfig's tokenFile, and a readable tokenFile then
        # beats --token on every request (transport.NewCachedFileTokenSource). The flag wins here.
        u = replace(u, token=o.token, token_file=None)
    if o.client_certificate:  # getAuthInfo: a cert/key override also replaces the *-data
        u = replace(u, client_certificate=o.client_certificate, client_certificate_data=None)
    if o.client_key:
        u = replace(u, client_key=o.client_key, client_key_data=None)
    # Each impersonation flag replaces only its own field (mergo WithOverride, field by field).
    return replace(
        u,
        impersonate=o.impersonate or u.impersonate,
        impersonate_uid=o.impersonate_uid or u.impersonate_uid,
        impersonate_groups=o.impersonate_groups or u.impersonate_groups,
    )


def _no_server(config: KubeConfig, ctx_name: str, cluster_name: str, cwhere: str) -> str:
    # Deviation: kubectl falls back to ClusterDefaults, http://localhost:8080, which can be
    # the proxy itself. kproxy asks for a server instead.
    if cluster_name:
        return f"{cwhere}.server: is empty; set the API server URL there or pass --server"
    if ctx_name:
        origin = _origin(config, f"contexts[{ctx_name}]")
        return (
            f"{origin}: contexts[{ctx_name}].context.cluster: "
            "is empty; name a cluster there or pass --cluster or --server"
        )
    if config.contexts or config.clusters:
        return (
            "no Kubernetes API server configured: no current-context is set and no --context "
            f"or --server given; {_available(config, 'contexts')}"
        )
    return "no Kubernetes API server configured: no kubeconfig found and no --server given"


def _server_url(server: str, where: str) -> tuple[str, bool]:
    """(normalised server URL, uses TLS), as rest.DefaultServerURL sees it from clientcmd."""
    # Deviation: Go would send user info as basic auth. Checked first: never echo a password.
    if "@" in server.split("://", 1)[-1].split("/", 1)[0]:
        raise ConfigError(f"{where}: the server URL must not contain user info; use a token or a client certificate")
    try:
        parts = urlsplit(server)
        if not parts.scheme or not parts.netloc:
            # A bare host:port gets a scheme. clientcmd asks IsConfigTransportTLS before any CA
            # or client cert is merged in, so defaultTLS is false: kubectl uses plain http.
            parts = urlsplit("http://" + server)
            if parts.path not in ("", "/"):
                raise ValueError("a path needs a scheme")
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as exc:
        raise ConfigError(f'{where}: "{server}" is not a URL ({exc}); use https://host:port') from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f'{where}: scheme "{parts.scheme}" is not supported; use https://host:port')
    if not parts.hostname:
        raise ConfigError(f'{where}: "{server}" has no host; use https://host:port')
    # ClientConfig drops the query and fragment (when there is a path; always, here).
    return f"{scheme}://{parts.netloc}{parts.path}", scheme == "https"


def _validate(c: Cluster, u: User, o: Overrides, cwhere: str, uwhere: str) -> None:
    """validation.go validateClusterInfo and validateAuthInfo, for the selected entries."""

    def fail(where: str, what: str) -> NoReturn:
        raise ConfigError(f"{where}: {what}")

    if c.certificate_authority and c.certificate_authority_data:
        fail(cwhere, "certificate-authority and certificate-authority-data are both set; keep one")
    if c.proxy_url:
        try:  # parseProxyURL. Never echo the URL: it may carry a password.
            scheme = urlsplit(c.proxy_url).scheme
        except ValueError:
            scheme = "?"
        if scheme not in ("http", "https", "socks5"):
            fail(f"{cwhere}.proxy-url", f'unsupported scheme "{scheme}"; must be http, https or socks5')
    if u.client_certificate or u.client_certificate_data:
        if u.client_certificate and u.client_certificate_data:
            fail(uwhere, "client-certificate and client-certificate-data are both set; keep one")
        if u.client_key and u.client_key_data:
            fail(uwhere, "client-key and client-key-data are both set; keep one")
        if not (u.client_key or u.client_key_data):
            fail(uwhere, "a client certificate needs client-key or client-key-data (or --client-key)")
    if u.token and (u.username or u.password):
        fail(
            uwhere,
            f"more than one authentication method ({'--token' if o.token else 'token'} "
            "and username/password); use only one",
        )
    if u.exec is not None and u.auth_provider is not None:
        fail(uwhere, "exec and auth-provider cannot both be set; keep one")
    if (u.impersonate_uid or u.impersonate_groups or u.impersonate_extra) and not u.impersonate:
        fail(
            uwhere, "as-uid, as-groups or as-user-extra (or --as-uid/--as-group) need a user to impersonate (as / --as)"
        )
