"""Go-compatible upstream proxy selection: which forward proxy, if any, a request URL uses.

The public face of :mod:`kproxy.policy.egress` (documented in the README); the
implementation lives there.
"""

from kproxy.policy.egress import (
    Decision,
    EgressConfig,
    EgressError,
    GoURL,
    ProxySetting,
    select,
)

__all__ = [
    "Decision",
    "EgressConfig",
    "EgressError",
    "GoURL",
    "ProxySetting",
    "select",
]
