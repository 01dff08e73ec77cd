"""How one request URL leaves, and the decision when no proxy is set anywhere.

In: a request URL. Out: a :class:`Decision` (public as ``kproxy.egress.Decision``): the
proxy to use or ``None`` for direct, where it came from and the rule that decided.
:meth:`kproxy.policy.egress.EgressConfig.decide` makes decisions from proxy settings;
:func:`direct` makes the one it would make when none is set at all (no
``--http-proxy-config``, no kubeconfig ``proxy-url``, no ``HTTP_PROXY``/``HTTPS_PROXY`` in
either case): direct, by the request's scheme, with the URL checked by Go's parser all
the same. That lets a start-up without a proxy leave the proxy rules and the
``NO_PROXY`` matcher unimported (``docs/startup.md`` §7); the two agree by construction
(they share :func:`unset_rule`) and by a test.

Pure: standard library only; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from kproxy.policy.go_url import GoURL

__all__ = ["Decision", "direct", "unset_rule", "unproxied_scheme_rule"]


@dataclass(frozen=True, slots=True)
class Decision:
    """How one request URL leaves: ``proxy`` is ``None`` for direct.

    ``source`` names the setting the proxy came from, ``rule`` what decided, ``error`` is
    set when Go refuses the request (CGI, docs/go-proxy-selection.md §1 step 3).
    """

    proxy: GoURL | None
    source: str
    rule: str
    error: bool = False

    def __str__(self) -> str:
        if self.error:
            return f"error: {self.rule}"
        if self.proxy is None:
            return f"direct: {self.rule}"
        line = f"proxy {self.proxy.display()} from {self.source}"
        return f"{line} ({self.rule})" if self.rule else line


def unset_rule(kind: str) -> str:
    """Why a URL of ``kind`` (``HTTP`` or ``HTTPS``) goes direct from the environment."""
    return f"{kind}_PROXY and {kind.lower()}_proxy are not set"


def unproxied_scheme_rule(scheme: str) -> str:
    return f"only http and https URLs use a proxy (scheme {scheme or '(none)'})"


def direct(url: str) -> Decision:
    """The decision for ``url`` when no proxy is set anywhere: what
    ``EgressConfig.from_environ({}).decide(url)`` gives. ``ValueError`` if Go cannot parse it."""
    scheme = GoURL.parse(url).scheme
    if scheme in ("http", "https"):
        return Decision(None, "", unset_rule(scheme.upper()))
    return Decision(None, "", unproxied_scheme_rule(scheme))
