"""Which forward proxy settings are in force, and which extra CAs are trusted, read at start-up.

In: :class:`~kproxy.config.flags.Flags` (``--http-proxy-config``,
``--custom-ca-trust-certificates``), the kubeconfig cluster's ``proxy-url``, the
environment (``HTTPS_PROXY``, ``NO_PROXY``...) and the working directory. Out:
:class:`Egress`: the one source in force (:func:`kproxy.policy.egress.select` decides by
precedence: ``--http-proxy-config`` > ``proxy-url`` > environment), how to name it, and the
extra CAs; their warnings go to the caller's list. The decision for the API server itself
is made in :mod:`kproxy.config.upstream`. Without a proxy set anywhere the proxy rules are
not even imported (``docs/startup.md`` §7): ``Egress.config`` is then ``None`` and every
URL goes direct (:func:`kproxy.policy.egress_decision.direct`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kproxy.config.files import read_file, resolve
from kproxy.config.flags import Flags
from kproxy.policy import kubeconfig
from kproxy.policy.egress_decision import Decision, direct
from kproxy.policy.trust import TrustBundle, merge, parse_ca_file, parse_pem

if TYPE_CHECKING:
    from kproxy.policy.egress import EgressConfig

__all__ = ["PROXY_VARIABLES", "Egress", "build_egress", "origins"]

# What Go's ProxyFromEnvironment takes a proxy from (docs/go-proxy-selection.md §2); an
# empty value is unset. Without any of them (and no file, no proxy-url) nothing is proxied.
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy")


@dataclass(frozen=True)
class Egress:
    """The proxy settings in force (one source, :func:`kproxy.policy.egress.select`) and the
    extra CAs, for ``--explain-egress``."""

    config: EgressConfig | None = None  # None: no proxy set anywhere, every URL goes direct
    source: str = "the environment"  # how the winning source is named for people
    trust: TrustBundle = field(default_factory=TrustBundle)

    def decide(self, url: str) -> Decision:
        """How ``url`` leaves: by the settings in force, or direct when none is set.
        ``ValueError`` if Go cannot parse it."""
        return self.config.decide(url) if self.config is not None else direct(url)

    def trusted(self, base: str) -> str:
        """``base`` (what is trusted besides), with the extra CAs if any, in words."""
        if not self.trust.certificates:
            return base
        return f"{base} and {len(self.trust.certificates)} custom CA(s) from {origins(self.trust)}"


def build_egress(
    flags: Flags, cluster: kubeconfig.Cluster, env: Mapping[str, str], base: str, warnings: list[str]
) -> Egress:
    """The proxy settings by precedence (--http-proxy-config > proxy-url > environment)
    and the extra CAs (--custom-ca-trust-certificates, then trustedCa)."""
    now = datetime.now(UTC)
    bundles = []
    if flags.custom_ca_trust_certificates:
        path = resolve(base, flags.custom_ca_trust_certificates)
        bundles.append(parse_ca_file(read_file(path, "--custom-ca-trust-certificates file"), path, now=now))
    if not flags.http_proxy_config and not cluster.proxy_url and not any(env.get(n) for n in PROXY_VARIABLES):
        bundle = merge(*bundles)
        warnings.extend(bundle.warnings)
        return Egress(None, "the environment", bundle)  # nothing to decide: every URL goes direct
    from kproxy.policy.egress import EgressConfig, select  # a proxy is set: its rules (docs/startup.md §7)

    from_file: EgressConfig | None = None
    if flags.http_proxy_config:
        path = resolve(base, flags.http_proxy_config)
        text = read_file(path, "--http-proxy-config file").decode("utf-8", "replace")
        from_file, trusted_ca = EgressConfig.from_http_proxy_config(text, path)
        if trusted_ca is not None:
            bundles.append(parse_pem(trusted_ca, f"{path} trustedCa", now=now))
        source = f"--http-proxy-config {path} (the kubeconfig proxy-url and the environment are not used)"
    elif cluster.proxy_url:
        source = "the kubeconfig cluster's proxy-url (the environment is not used)"
    else:
        source = "the environment"
    config = select(http_proxy_config=from_file, proxy_url=cluster.proxy_url, environ=env)
    bundle = merge(*bundles)
    warnings.extend(bundle.warnings)
    if config.http is not None or config.https is not None or config.proxy_url is not None:
        warnings.extend(config.warnings)  # quiet unless a proxy is configured at all
    return Egress(config, source, bundle)


def origins(bundle: TrustBundle) -> str:
    """The files (and trustedCa) the extra CAs came from, once each, in order."""
    return ", ".join(dict.fromkeys(o.rpartition(" block ")[0] for o in bundle.origins))
