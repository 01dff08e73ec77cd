"""What a credential needs to reach a server other than the API server (an OIDC issuer).

In: nothing; this is the contract. Out: :class:`Outbound`, the one way a credential sends
an HTTP request — implemented below this layer's sight by
:mod:`kproxy.upstream.outbound`, which takes the same road as connections to the API
server (the egress decision: ``--http-proxy-config``, the kubeconfig's ``proxy-url``,
``HTTPS_PROXY``/``NO_PROXY``; the custom CA trust) — and :class:`Reply`, what comes back.
The server hands it to the credential when it starts (``AuthSource.use_outbound``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Outbound", "Reply"]


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str  # the standard reason phrase for the status
    body: bytes = field(repr=False)


class Outbound(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes = b"",
        ca_pem: bytes | None = None,
    ) -> Reply:
        """Send one request and read the whole answer (redirects followed for GET).

        ``ca_pem``: the only CAs to trust for an ``https`` URL (with the custom CAs); None:
        the system's. Raises :class:`~kproxy.errors.UpstreamError` naming the URL's host
        and the proxy if any, never a credential."""
        ...
