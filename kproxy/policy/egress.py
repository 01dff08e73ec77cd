"""Go-compatible upstream proxy selection: which forward proxy, if any, a request URL uses.

In: the proxy settings, from one of three sources (:func:`select` picks, highest first):

1. ``--http-proxy-config FILE`` — the AKS ``httpProxyConfig`` JSON
   (:meth:`EgressConfig.from_http_proxy_config`);
2. the kubeconfig cluster's ``proxy-url`` (:meth:`EgressConfig.from_proxy_url`): client-go's
   rule, every request goes through it, the environment is not read at all;
3. the environment (:meth:`EgressConfig.from_environ`), read once, as Go's
   ``net/http.ProxyFromEnvironment`` reads it.

Out, per request URL: :meth:`EgressConfig.proxy_for` → the proxy URL exactly as Go's
``url.URL.String()`` prints it, or ``None`` for direct; :meth:`EgressConfig.decide` → the
same as a :class:`Decision` carrying the parsed :class:`GoURL` (host, port, credentials)
and the rule that decided; :meth:`EgressConfig.explain` → that decision as one line.

The environment, exactly as Go 1.23 (golang.org/x/net/http/httpproxy; the document
``docs/go-proxy-selection.md``, whose section numbers the comments cite)::

    HTTP_PROXY  | http_proxy     proxy for http:// URLs    uppercase first; an empty value
    HTTPS_PROXY | https_proxy    proxy for https:// URLs   counts as unset; the two
    NO_PROXY    | no_proxy       hosts that go direct      spellings are never merged
    REQUEST_METHOD non-empty     CGI: an http:// URL with an HTTP proxy is an error

    proxy value  := URL with scheme and host            any scheme is kept: socks5h://h:1080
                  | host[:port] | user:pw@host[:port]   "http://" is put in front
    NO_PROXY     := entry ("," entry)*                  spaces around entries ignored
    entry        := "*"                                 anywhere: everything goes direct
                  | ip "/" bits                         CIDR, IPv4 or IPv6, no port
                  | ip | "[" ipv6 "]:" port | ipv4 ":" port
                  | ["*" | ""] "." domain [":" port]    subdomains only
                  | domain [":" port]                   the name and its subdomains

Examples (``HTTPS_PROXY=proxy.corp:3128``, ``NO_PROXY=.svc,10.0.0.0/8,example.com:443``)::

    https://api.example.com/      → None     (example.com:443 matches, effective port 443)
    https://api.example.com:6443/ → "http://proxy.corp:3128"
    https://10.1.2.3:6443/        → None     (CIDR)
    https://kubernetes.svc/       → None     (.svc: subdomains only)
    https://svc/                  → "http://proxy.corp:3128"
    http://api.example.com/       → None     (no HTTP_PROXY; HTTPS_PROXY is never used for http)
    https://127.0.0.1:6443/       → None     (loopback is never proxied)
    https://LOCALHOST/            → "http://proxy.corp:3128" (only exact "localhost" is)

What differs from Python's ``urllib``, requests and aiohttp (which prefer lowercase, have no
loopback rule, match ``.example.com`` against ``example.com``, and know no IPv6 CIDRs) is
listed in docs/go-proxy-selection.md §10. No DNS lookups are made, ever (§5).

Pure: standard library only; nothing here reads the environment or files on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kproxy.errors import ConfigError, UpstreamError
from kproxy.policy.egress_decision import Decision, unproxied_scheme_rule, unset_rule
from kproxy.policy.go_url import GoURL, hide_userinfo
from kproxy.policy.no_proxy import NoProxy, join_host_port, parse_ip, request_host

__all__ = [
    "Decision",
    "EgressConfig",
    "EgressError",
    "GoURL",
    "ProxySetting",
    "select",
]

CGI_REFUSAL = "refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy"


class EgressError(UpstreamError):
    """Go refuses the proxy for this request (the CGI rule, §1 step 3): the request fails."""


def _parse_proxy(value: str) -> GoURL | None:
    """httpproxy ``parseProxy`` (§3): ``None`` when Go drops the value."""
    if value == "":
        return None
    try:
        url: GoURL | None = GoURL.parse(value)
    except ValueError:
        url = None
    if url is None or not url.scheme or not url.host:
        try:
            return GoURL.parse("http://" + value)
        except ValueError:
            pass
    # The retry failed too. Go then keeps a first parse that succeeded even without scheme
    # or host ("localhost:abc", "proxy host"), and the request fails dialing it; only a value
    # that fails both parses is dropped. (docs/go-proxy-selection.md §3 step 4; kubectl 1.32.4 dials
    # ":0" for these values.)
    return url


# --- settings and decisions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxySetting:
    """One proxy value and where it came from (``HTTPS_PROXY``, ``httpProxy``, …)."""

    name: str
    value: str = field(repr=False)
    url: GoURL | None  # None: unparseable, ignored as Go ignores it
    note: str = ""

    @property
    def shown(self) -> str:
        return self.url.display() if self.url is not None else repr(hide_userinfo(self.value))

    def warnings(self, location: str) -> list[str]:
        where = f"{self.name}{location}"
        if self.url is None:
            return [f"{where} value {self.shown} cannot be parsed as a URL; ignored as Go ignores it"]
        url = self.url
        if not url.host:
            return [
                f"{where} value {hide_userinfo(self.value)!r} is read by Go as {url.display()!r}, "
                "which has no host: requests through it fail"
            ]
        if (url.host.endswith(":") and url.path.startswith("//")) or (
            ":" in url.hostname and parse_ip(url.hostname, zone=True) is None
        ):
            # §3: a bad port or a space sends Go to its "http://" + value retry
            return [
                f"{where} value {hide_userinfo(self.value)!r} is read by Go as {url.display()} "
                f"(host {url.hostname!r}): requests through it fail; look for a bad port or a stray space"
            ]
        if url.scheme not in ("http", "https", "socks5", "socks5h"):
            return [f"{where}: scheme {url.scheme}:// is used as a plain HTTP proxy, as Go does"]
        return []


@dataclass(frozen=True, slots=True)
class EgressConfig:
    """Proxy settings from one source, parsed once. Build with the ``from_*`` methods."""

    source: Literal["environment", "proxy-url", "httpProxyConfig"] = "environment"
    http: ProxySetting | None = None
    https: ProxySetting | None = None
    no_proxy: NoProxy = field(default_factory=NoProxy)
    no_proxy_name: str = "NO_PROXY"
    cgi: bool = False
    location: str = ""  # " in FILE" for an httpProxyConfig file
    proxy_url: ProxySetting | None = None  # kubeconfig proxy-url: every request through it

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EgressConfig:
        """Go's ``FromEnvironment`` (§2): uppercase first, empty = unset, never merged."""

        def pick(upper: str, lower: str) -> tuple[str, str]:
            for name in (upper, lower):
                if environ.get(name, ""):
                    return name, environ[name]
            return upper, ""

        settings = []
        for upper, lower in (("HTTP_PROXY", "http_proxy"), ("HTTPS_PROXY", "https_proxy")):
            name, value = pick(upper, lower)
            settings.append(ProxySetting(name, value, _parse_proxy(value)) if value else None)
        no_proxy_name, no_proxy = pick("NO_PROXY", "no_proxy")
        return cls(
            source="environment",
            http=settings[0],
            https=settings[1],
            no_proxy=NoProxy.parse(no_proxy),
            no_proxy_name=no_proxy_name,
            cgi=environ.get("REQUEST_METHOD", "") != "",
        )

    @classmethod
    def from_proxy_url(cls, url: str) -> EgressConfig:
        """A kubeconfig cluster's ``proxy-url`` (§9, client-go ``parseGoURL``).

        Only ``http``, ``https`` and ``socks5``. Every request goes through it: NO_PROXY,
        the loopback rule, the CGI rule and the environment do not apply. kproxy also
        refuses a URL without a host, which kubectl accepts and then fails to dial.
        """
        shown = hide_userinfo(url)
        try:
            parsed = GoURL.parse(url)
        except ValueError as exc:
            raise ConfigError(f"proxy-url {shown!r}: could not parse: {exc}") from None
        if parsed.scheme not in ("http", "https", "socks5"):
            hint = (
                " (socks5h is not accepted by kubectl; socks5 already resolves names on the proxy)"
                if parsed.scheme == "socks5h"
                else ""
            )
            raise ConfigError(
                f'proxy-url {shown!r}: unsupported scheme "{parsed.scheme}", must be http, https, or socks5{hint}'
            )
        if not parsed.hostname:
            raise ConfigError(f"proxy-url {shown!r}: no proxy host; write {parsed.scheme}://HOST:PORT")
        return cls(source="proxy-url", proxy_url=ProxySetting("kubeconfig proxy-url", url, parsed))

    @classmethod
    def from_http_proxy_config(cls, text: str, source: str) -> tuple[EgressConfig, bytes | None]:
        """The AKS ``httpProxyConfig`` JSON (§11) → settings and the decoded ``trustedCa`` PEM.

        ``httpsProxy`` falls back to ``httpProxy``; ``noProxy`` entries are joined as one
        NO_PROXY value and matched by Go's rules; CGI never applies. Stricter than Go, as
        AKS is: explicit schemes, and no ``*`` attached to a domain suffix.
        """
        return _load_http_proxy_config(text, source)

    # --- per request ---

    def decide(self, url: str) -> Decision:
        """The decision for one request URL (§1). ``ValueError`` if Go cannot parse it."""
        req = GoURL.parse(url)
        if self.proxy_url is not None:
            return Decision(
                self.proxy_url.url, self.proxy_url.name, "every request; the environment and NO_PROXY are not used"
            )
        loc = self.location
        # §1 step 2: the candidate comes from the request scheme only; no fallback.
        if req.scheme == "https":
            setting, kind = self.https, "HTTPS"
        elif req.scheme == "http":
            setting, kind = self.http, "HTTP"
        else:
            return Decision(None, "", unproxied_scheme_rule(req.scheme))
        if setting is not None and setting.url is not None and kind == "HTTP" and self.cgi:
            # §1 step 3, before NO_PROXY and loopback; HTTPS proxies are still used.
            return Decision(None, setting.name, f"{CGI_REFUSAL} (REQUEST_METHOD is set; {setting.name})", True)
        if setting is None or setting.url is None:
            return Decision(None, "", self._no_candidate(kind, setting))
        proxy = setting.url
        source = f"{setting.name}{loc}{setting.note}"
        port = req.port or {"http": "80", "https": "443"}[req.scheme]
        host = request_host(req.hostname, port)
        if host is None:  # Go's useProxy cannot split the address: no proxy
            return Decision(None, "", f"Go cannot split host and port of {req.host!r}")
        if host.loopback:  # §6
            return Decision(None, "", host.loopback)
        entry = self.no_proxy.match(host)  # §7-§8
        if entry is not None:
            shown_host = f"{host.host}:{host.port}" if entry.port else host.host
            what = "every host" if entry.kind == "all" else shown_host
            return Decision(
                None, f"{self.no_proxy_name}{loc}", f"{self.no_proxy_name} entry {entry.text}{loc} matches {what}"
            )
        shown = join_host_port(host.host, host.port) if any(e.port for e in self.no_proxy.entries) else host.host
        rule = f"no {self.no_proxy_name} entry matches {shown}" if self.no_proxy.entries else ""
        return Decision(proxy, source, rule)

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for ``url`` as Go prints it, or ``None`` for direct.

        Raises :class:`EgressError` where Go refuses the request (CGI rule) and
        ``ValueError`` when ``url`` is not a URL Go can parse.
        """
        decision = self.decide(url)
        if decision.error:
            raise EgressError(decision.rule)
        return None if decision.proxy is None else str(decision.proxy)

    def explain(self, url: str) -> str:
        """One line: direct or which proxy, from which source, and the rule that decided."""
        try:
            return str(self.decide(url))
        except ValueError as exc:
            return f"error: {url!r} is not a valid URL: {exc}"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Values Go silently ignores or reads oddly, and NO_PROXY entries that never match."""
        out: list[str] = []
        for setting in (self.proxy_url, self.http, self.https):
            if setting is not None and not setting.note:
                out += setting.warnings(self.location)
        out += [f"{self.no_proxy_name}{self.location}: {note}" for note in self.no_proxy.notes()]
        return tuple(out)

    def _no_candidate(self, kind: str, setting: ProxySetting | None) -> str:
        if setting is not None:
            return f"{setting.name}{self.location} value {setting.shown} cannot be parsed; Go ignores it"
        if self.source == "httpProxyConfig":
            return (
                f"neither httpsProxy nor httpProxy is set{self.location}"
                if kind == "HTTPS"
                else f"httpProxy is not set{self.location}"
            )
        other = self.http if kind == "HTTPS" else self.https
        line = unset_rule(kind)
        if other is not None:
            line += f" ({other.name} is never used for {kind.lower()} URLs)"
        return line


def select(
    *, http_proxy_config: EgressConfig | None = None, proxy_url: str = "", environ: Mapping[str, str]
) -> EgressConfig:
    """kproxy's precedence among sources (§11): an ``--http-proxy-config`` file (already
    parsed with :meth:`EgressConfig.from_http_proxy_config`) over the kubeconfig cluster's
    ``proxy-url`` over the environment. The winner replaces the others entirely: settings
    are never merged across sources. An empty ``proxy_url`` means unset, as in client-go."""
    if http_proxy_config is not None:
        return http_proxy_config
    if proxy_url:
        return EgressConfig.from_proxy_url(proxy_url)
    return EgressConfig.from_environ(environ)


# --- the AKS httpProxyConfig file (§11) ----------------------------------------------------

_AKS_FIELDS = ("httpProxy", "httpsProxy", "noProxy", "trustedCa")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(hide_userinfo(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _load_http_proxy_config(text: str, source: str) -> tuple[EgressConfig, bytes | None]:
    def fail(what: str) -> ConfigError:
        return ConfigError(f"{source}: {what}")

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(doc, dict) and list(doc) == ["httpProxyConfig"]:
        doc = doc["httpProxyConfig"]  # the ARM template's property, pasted whole
    if not isinstance(doc, dict):
        raise fail(f"must be a JSON object with the fields {', '.join(_AKS_FIELDS)}; got {_short(doc)}")
    for key in doc:
        if key not in _AKS_FIELDS and key != "trustedCA":
            raise fail(f"unknown field {key!r}; the fields are {', '.join(_AKS_FIELDS)}")
    if "trustedCa" in doc and "trustedCA" in doc:
        raise fail("both trustedCa and trustedCA are set; keep one")

    def proxy(key: str, schemes: tuple[str, ...]) -> ProxySetting | None:
        value = doc.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise fail(f'{key} must be a string such as "http://proxy.example:3128", got {_short(value)}')
        try:
            url = GoURL.parse(value)
        except ValueError as exc:
            raise fail(f"{key} {_short(value)} is not a valid URL: {exc}") from None
        if url.scheme not in schemes or not url.host:
            want = " or ".join(f"{s}://" for s in schemes)
            guess = _parse_proxy(value)
            hint = (
                f"; did you mean {guess.display()!r}?"
                if guess
                and guess.scheme == "http"
                and guess.host
                and (not url.host or url.scheme not in ("https", "socks5", "socks5h"))
                else ""
            )
            raise fail(f"{key} {_short(value)} must be a URL starting with {want}{hint}")
        return ProxySetting(key, value, url)

    http = proxy("httpProxy", ("http",))
    https = proxy("httpsProxy", ("http", "https"))
    if https is None and http is not None:
        https = replace(http, note=" (httpsProxy is not set: AKS uses httpProxy for both)")

    entries = doc.get("noProxy")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise fail(f"noProxy must be a list of strings, got {_short(entries)}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise fail(f"noProxy[{i}] must be a string, got {_short(entry)}")
        if "," in entry:
            raise fail(f"noProxy[{i}] {entry!r} contains a comma; give each entry as its own list item")
        bare = entry.strip()
        if "*" in bare and bare != "*":
            # AKS rejects '*' attached to a domain suffix; Go would accept "*.domain".
            hint = (
                f"write {bare[1:]!r} (it matches the subdomains of {bare[2:]})"
                if bare.startswith("*.")
                else "remove the '*'"
            )
            raise fail(f"noProxy[{i}] {entry!r}: AKS does not support '*' attached to a domain; {hint}")

    trusted = _trusted_ca(doc, fail)
    config = EgressConfig(
        source="httpProxyConfig",
        http=http,
        https=https,
        no_proxy=NoProxy.parse(",".join(entries)),
        no_proxy_name="noProxy",
        location=f" in {source}",
    )
    return config, trusted


def _trusted_ca(doc: dict[str, Any], fail: Callable[[str], ConfigError]) -> bytes | None:
    key = "trustedCA" if "trustedCA" in doc else "trustedCa"
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(f"{key} must be a string of base64-encoded PEM, got {_short(value)}")
    try:
        pem = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(
            f"{key} {_short(value)} is not valid base64 ({exc}); encode the PEM file with: base64 -w0 ca.pem"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise fail(
            f"{key} decodes to data that is not a PEM certificate "
            f"(no -----BEGIN CERTIFICATE----- line; starts with {pem[:20]!r})"
        )
    return pem
