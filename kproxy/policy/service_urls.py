"""The API server's proxy URLs: parse, build and validate them.

In: a request path as sent (still percent-encoded, optionally with ``?query``), or the
parts of a target. Out: a :class:`ProxyTarget`, a path, or :class:`InvalidProxyURL` (a
:class:`~kproxy.errors.BadRequest`, so it renders as a 400 ``Status``). No I/O.

Grammar (kube-apiserver's proxy subresources; ``ID`` is Go's ``SplitSchemeNamePort``)::

    /api/v1/namespaces/NAMESPACE/services/ID/proxy[/PATH][?QUERY]
    /api/v1/namespaces/NAMESPACE/pods/ID/proxy[/PATH][?QUERY]
    /api/v1/nodes/ID/proxy[/PATH][?QUERY]

    ID = NAME | NAME:PORT | SCHEME:NAME:PORT      SCHEME = http | https

Examples, ID → (scheme, name, port)::

    nginx               ("", "nginx", "")          port: a single unnamed service port
    nginx:80            ("", "nginx", "80")        port number (a service port, not targetPort)
    nginx:http          ("", "nginx", "http")      port name
    nginx:https         ("", "nginx", "https")     a port *named* https: the scheme is still http
    https:nginx:8443    ("https", "nginx", "8443")
    https:nginx:        ("https", "nginx", "")     valid: scheme and an empty port, as
                                                   kubectl cluster-info prints for metrics-server
    https:nginx         ("", "https", "nginx")     two parts are NAME:PORT: service "https"!

Fields hold the text as written, so ``parse(p).path() == p`` for every accepted ``p`` and
``parse(t.path()) == t`` for every valid ``t``. The remaining path is kept byte for byte:
``/proxy`` gives ``rest=""``, ``/proxy/`` gives ``rest="/"`` (the API server redirects a GET
of the former to the latter) and ``/proxy/a%2Fb`` gives ``rest="/a%2Fb"`` (an encoded slash
stays encoded). The query is ``None`` without ``?`` and ``""`` for a bare ``?``.

Validation is Kubernetes' (k8s.io/apimachinery/pkg/util/validation): namespace = DNS-1123
label; service name = DNS-1035 label; pod and node names = DNS-1123 subdomain; port =
empty, 1-65535 or an IANA service name (``IsValidPortName``); scheme = http or https.
Names are checked after percent-decoding, as the API server decodes the path.

:func:`parse` returns ``None`` for paths that are not proxy URLs, and raises for ones that
are recognisably meant to be but would fail upstream, where kube-apiserver's answer (404
or 503) does not say why. kproxy: stricter than kube-apiserver in three places, each to
keep one spelling per target: ``NAME:`` (an empty port without a scheme: write ``NAME``)
and ``:NAME:PORT`` (an empty scheme: write ``NAME:PORT``) are rejected, and so is the
``/api/v1/proxy/...`` form, removed in Kubernetes 1.10 (kubernetes#59884), with the
current spelling in the message. Also recognised as mistakes: an ``ID`` with ``:`` but
no ``/proxy`` after it, ``/api/v1/services/X/proxy`` (services and pods are namespaced)
and ``/api/v1/namespaces/NS/nodes/X/proxy`` (nodes are not). A fixed segment spelled with
escapes (``%73ervices``) is not recognised: such paths pass untouched, as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from kproxy.errors import BadRequest

__all__ = [
    "FORMS",
    "InvalidProxyURL",
    "Kind",
    "ProxyTarget",
    "parse",
    "proxy_path",
    "proxy_url",
    "target",
    "validate",
]

Kind = Literal["service", "pod", "node"]

FORMS: dict[str, str] = {
    "service": "/api/v1/namespaces/NAMESPACE/services/[https:]NAME[:PORT]/proxy/PATH",
    "pod": "/api/v1/namespaces/NAMESPACE/pods/[https:]NAME[:PORT]/proxy/PATH",
    "node": "/api/v1/nodes/[https:]NAME[:PORT]/proxy/PATH",
}
_KIND_OF: dict[str, Kind] = {"services": "service", "pods": "pod", "nodes": "node"}
_RESOURCE_OF = {kind: resource for resource, kind in _KIND_OF.items()}

_LABEL_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?").fullmatch
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?").fullmatch
_SUBDOMAIN_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*").fullmatch
_PORT_NAME_CHARS = re.compile(r"[-a-z0-9]+").fullmatch

# The rules, worded for people; Go's regexes are in the patterns above.
_RULE_LABEL_1123 = (
    "a DNS-1123 label: at most 63 lower case letters, digits and '-', starting and ending"
    " with a letter or digit, e.g. 'my-name'"
)
_RULE_LABEL_1035 = (
    "a DNS-1035 label: at most 63 lower case letters, digits and '-', starting with a letter"
    " and ending with a letter or digit, e.g. 'my-name'"
)
_RULE_SUBDOMAIN = (
    "a DNS-1123 subdomain: at most 253 characters, DNS-1123 labels (lower case letters,"
    " digits and '-', starting and ending with a letter or digit) joined by '.', e.g. 'web-0.example'"
)
_RULE_PORT = (
    "empty, a port number 1-65535, or an IANA service name: at most 15 lower case letters,"
    " digits and '-', at least one letter, no '--', not starting or ending with '-'"
)
_RULE_SCHEME = "http or https"


class InvalidProxyURL(BadRequest):
    """A proxy URL that names its target wrongly. ``part`` is what is wrong ("port",
    "service name", ...), ``value`` its text as written."""

    def __init__(self, kind: str, part: str, value: str, problem: str) -> None:
        form = FORMS.get(kind, FORMS["service"])
        super().__init__(f"invalid {kind} proxy URL: {part} {_show(value)} {problem}; the form is {form}")
        self.kind = kind
        self.part = part
        self.value = value


def _show(value: str) -> str:
    text = value if len(value) <= 100 else value[:100] + "..."
    return f"'{text}'"


@dataclass(frozen=True, slots=True)
class ProxyTarget:
    """One proxy URL, as its parts. ``namespace`` is "" for nodes; ``scheme`` and ``port``
    are "" when absent; ``rest`` is what follows ``/proxy`` ("" or starting with "/");
    ``query`` the raw query without "?", or None when there is no "?"."""

    kind: Kind
    namespace: str
    scheme: str
    name: str
    port: str
    rest: str = ""
    query: str | None = None

    @property
    def id(self) -> str:
        """The ``[SCHEME:]NAME[:PORT]`` segment: Go's ``JoinSchemeNamePort``."""
        if self.scheme:
            return f"{self.scheme}:{self.name}:{self.port}"
        return f"{self.name}:{self.port}" if self.port else self.name

    def path(self) -> str:
        """The request path (with ``?query`` if any) that :func:`parse` reads back as ``self``."""
        if self.kind == "node":
            head = f"/api/v1/nodes/{self.id}/proxy"
        else:
            head = f"/api/v1/namespaces/{self.namespace}/{_RESOURCE_OF[self.kind]}/{self.id}/proxy"
        return head + self.rest + ("" if self.query is None else "?" + self.query)

    def describe(self) -> str:
        """For logs: ``service default/nginx:http``, ``node demo-node``."""
        where = self.id if self.kind == "node" else f"{self.namespace}/{self.id}"
        return f"{self.kind} {where}"


def _decoded(value: str) -> str:
    # The API server routes on the decoded path, so names are checked decoded.
    return unquote(value, errors="surrogateescape") if "%" in value else value


def _first_bad(value: str, allowed: str) -> str:
    for char in value:
        if char not in allowed:
            return char
    return ""


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _label_problem(value: str, *, letter_first: bool) -> str | None:
    """Why ``value`` is not a DNS label (1035 if ``letter_first``, else 1123), or None."""
    if (_LABEL_1035 if letter_first else _LABEL_1123)(value) and len(value) <= 63:
        return None
    if value == "":
        return "is empty"
    if len(value) > 63:
        return f"has {len(value)} characters"
    bad = _first_bad(value, _NAME_CHARS)
    if bad:
        return f"contains {_show(bad)}"
    if letter_first and not value[0].isalpha():
        return "does not start with a letter"
    return "starts or ends with '-'"


def _subdomain_problem(value: str) -> str | None:
    if _SUBDOMAIN_1123(value) and len(value) <= 253:
        return None
    if value == "":
        return "is empty"
    if len(value) > 253:
        return f"has {len(value)} characters"
    bad = _first_bad(value, _NAME_CHARS + ".")
    if bad:
        return f"contains {_show(bad)}"
    if ".." in value or value[0] == "." or value[-1] == ".":
        return "has an empty label between dots"
    return "has a label starting or ending with '-'"


def _port_problem(value: str) -> str | None:
    """Go's port rules: a number 1-65535 (digits only), or ``IsValidPortName``."""
    if value == "":
        return None
    if value.isascii() and value.isdigit():
        return None if 1 <= int(value) <= 65535 else "is out of range"
    if len(value) > 15:
        return f"has {len(value)} characters"
    if not _PORT_NAME_CHARS(value):
        return f"contains {_show(_first_bad(value, _NAME_CHARS))}"
    if not any("a" <= c <= "z" for c in value):
        return "has no letter"
    if "--" in value:
        return "contains '--'"
    if value[0] == "-" or value[-1] == "-":
        return "starts or ends with '-'"
    return None


def validate(t: ProxyTarget) -> None:
    """Raise :class:`InvalidProxyURL` for the first part of ``t`` that breaks its rule."""
    kind = t.kind
    if kind not in _RESOURCE_OF:
        raise InvalidProxyURL("service", "kind", str(kind), "must be service, pod or node")
    if kind == "node":
        if t.namespace:
            raise InvalidProxyURL(kind, "namespace", t.namespace, "must be empty: nodes are not namespaced")
    else:
        problem = _label_problem(_decoded(t.namespace), letter_first=False)
        if problem:
            raise InvalidProxyURL(kind, "namespace", t.namespace, f"{problem}: it must be {_RULE_LABEL_1123}")
    if t.scheme not in ("", "http", "https"):
        raise InvalidProxyURL(kind, "scheme", t.scheme, f"must be {_RULE_SCHEME} (SCHEME:NAME:PORT, scheme first)")
    name = _decoded(t.name)
    if kind == "service":
        problem = _label_problem(name, letter_first=True)
        rule = _RULE_LABEL_1035
    else:
        problem = _subdomain_problem(name)
        rule = _RULE_SUBDOMAIN
    if problem:
        raise InvalidProxyURL(kind, f"{kind} name", t.name, f"{problem}: it must be {rule}")
    problem = _port_problem(_decoded(t.port))
    if problem:
        raise InvalidProxyURL(kind, "port", t.port, f"{problem}: it must be {_RULE_PORT}")
    if t.rest and (t.rest[0] != "/" or "?" in t.rest):
        raise InvalidProxyURL(kind, "remaining path", t.rest, "must be empty or start with '/', without '?'")


def _split_id(kind: Kind, text: str) -> tuple[str, str, str]:
    """``[SCHEME:]NAME[:PORT]`` → (scheme, name, port), one spelling per target."""
    parts = text.split(":")
    if len(parts) == 1:
        return "", text, ""
    if len(parts) == 2:
        if parts[1] == "":
            raise InvalidProxyURL(
                kind,
                f"{kind}",
                text,
                f"has an empty port after ':' (kproxy: write '{parts[0]}'; an empty port needs a"
                f" scheme: 'https:{parts[0]}:')",
            )
        return "", parts[0], parts[1]
    if len(parts) == 3:
        if parts[0] == "":
            plain = f"{parts[1]}:{parts[2]}" if parts[2] else parts[1]
            raise InvalidProxyURL(
                kind,
                "scheme",
                "",
                f"is empty in '{text}': it must be {_RULE_SCHEME} (kproxy: for http write '{plain}')",
            )
        return parts[0], parts[1], parts[2]
    raise InvalidProxyURL(kind, f"{kind}", text, f"has {len(parts)} ':'-separated parts; at most 3: SCHEME:NAME:PORT")


def target(
    kind: Kind, spec: str, *, namespace: str = "default", rest: str = "", query: str | None = None
) -> ProxyTarget:
    """A validated target from an ``[SCHEME:]NAME[:PORT]`` text (namespace ignored for nodes)."""
    scheme, name, port = _split_id(kind, spec)
    t = ProxyTarget(kind, "" if kind == "node" else namespace, scheme, name, port, rest, query)
    validate(t)
    return t


def proxy_path(
    kind: Kind, name: str, *, namespace: str = "default", scheme: str = "", port: str = "", rest: str = ""
) -> str:
    """The proxy path for a target given by parts, validated: ``proxy_path("service",
    "nginx", port="http")`` is ``/api/v1/namespaces/default/services/nginx:http/proxy``."""
    t = ProxyTarget(kind, "" if kind == "node" else namespace, scheme, name, port, rest)
    validate(t)
    return t.path()


def proxy_url(base_url: str, t: ProxyTarget) -> str:
    """``t`` under a proxy's address: ``http://127.0.0.1:8001`` + ``t.path()`` (one '/')."""
    return base_url.rstrip("/") + t.path()


def parse(path: str) -> ProxyTarget | None:
    """The target of a proxy URL, ``None`` if ``path`` is not one, or :class:`InvalidProxyURL`.

    ``path`` is the request path as sent (prefix-stripped, still percent-encoded), with or
    without ``?query``. Cheap for ordinary API paths: two substring tests.
    """
    raw, qmark, query_text = path.partition("?")
    if "/proxy" not in raw and ":" not in raw:
        return None
    if not raw.startswith("/api/v1/"):
        return None
    query = query_text if qmark else None
    segments = raw[8:].split("/")
    head = segments[0]
    if head == "proxy":
        raise _legacy(segments, query)
    namespace: str | None = None
    if head == "namespaces" and len(segments) >= 4 and segments[2] in _KIND_OF:
        namespace, resource, id_text, after = segments[1], segments[2], segments[3], segments[4:]
    elif head in _KIND_OF and len(segments) >= 2:
        resource, id_text, after = head, segments[1], segments[2:]
    else:
        return None
    kind = _KIND_OF[resource]
    if not after or after[0] != "proxy":
        if ":" in id_text:
            # Names never contain ':'; an ID with a port only means something before /proxy.
            raise InvalidProxyURL(kind, f"{kind} name", id_text, "contains ':' but no /proxy follows it")
        return None
    if kind == "node" and namespace is not None:
        raise InvalidProxyURL(kind, "namespace", namespace, "is not allowed: nodes are not namespaced")
    if kind != "node" and namespace is None:
        raise InvalidProxyURL(kind, "namespace", "", f"is missing: {resource} are namespaced")
    scheme, name, port = _split_id(kind, id_text)
    rest = "/" + "/".join(after[1:]) if len(after) > 1 else ""
    t = ProxyTarget(kind, namespace or "", scheme, name, port, rest, query)
    validate(t)
    return t


def _legacy(segments: list[str], query: str | None) -> InvalidProxyURL:
    """The ``/api/v1/proxy/...`` form: gone since Kubernetes 1.10; name the current one."""
    suggestion = ""
    if len(segments) >= 5 and segments[1] == "namespaces" and segments[3] in ("services", "pods"):
        inner = "/".join(segments[1:5])
        rest = segments[5:]
    elif len(segments) >= 3 and segments[1] == "nodes":
        inner = "/".join(segments[1:3])
        rest = segments[3:]
    else:
        inner = ""
        rest = []
    if inner:
        suggestion = f"/api/v1/{inner}/proxy" + "".join("/" + s for s in rest)
        suggestion += "" if query is None else "?" + query
        suggestion = f"; use {suggestion}"
    kind = "node" if len(segments) > 1 and segments[1] == "nodes" else "service"
    return InvalidProxyURL(
        kind,
        "path",
        "/api/v1/proxy/" + "/".join(segments[1:]),
        f"uses the /api/v1/proxy/... form, removed in Kubernetes 1.10{suggestion}",
    )
