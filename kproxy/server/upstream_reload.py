"""Reloading the upstream: the kubeconfig, the CA files and the proxy settings, taken up while serving.

In: the :class:`~kproxy.config.options.Options` in force and the pipeline it feeds. Out,
on :meth:`UpstreamReload.reload` (SIGHUP, or one of ``Options.reload_paths`` changed):
either the new configuration in force — built whole by :meth:`Options.rebuilt`, so every
file is read and every credential and TLS context checked before anything changes — or,
when that fails, the old one kept and one error line naming the file and the field
(config errors never quote a credential). Counted in ``kproxy_config_reloads_total``.

New requests go out through a new relay, pool, HTTP/2 lane and dialer; requests in
flight (watches, exec sessions, streams) finish on the old ones, retired at once: idle
connections go, busy ones are closed when their exchange ends instead of being pooled,
and HTTP/2 connections when their last stream ends.
"""

from __future__ import annotations

from collections.abc import Callable

from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.log import NOTICE, log
from kproxy.metrics import tally
from kproxy.proxy.relay import Relay
from kproxy.upstream.dialer import Dialer
from kproxy.upstream.lane import H2Lane
from kproxy.upstream.outbound import OutboundHTTP
from kproxy.upstream.pool import ConnectionPool

__all__ = ["UpstreamReload", "relay_for", "retire"]


def relay_for(options: Options) -> Relay:
    """A relay with a dialer, pool and HTTP/2 lane of its own, for ``options.upstream``."""
    upstream = options.upstream
    dialer = Dialer(upstream)
    if upstream.auth is not None:
        # OIDC refreshes reach the issuer by the API server's road: egress and trust.
        upstream.auth.use_outbound(
            OutboundHTTP(
                options.egress, connect_timeout=upstream.connect_timeout, user_agent=upstream.user_agent_header
            )
        )
    lane = H2Lane(dialer) if upstream.http2 else None
    return Relay(upstream, ConnectionPool(dialer), lane)


def retire(relay: Relay) -> None:
    """A relay no longer in force: idle connections go now, those in use when their
    exchange ends; HTTP/2 connections when their last stream (a watch) ends."""
    relay.pool.close()
    if relay.lane is not None:
        relay.lane.retire()


class UpstreamReload:
    """Holds the options and relay in force; ``use`` tells the rest about a new relay."""

    def __init__(self, options: Options, relay: Relay, use: Callable[[Options, Relay], None]) -> None:
        self.options = options
        self.relay = relay
        self._use = use

    def reload(self) -> bool:
        """Build the configuration again from its files; put it in force if it is valid."""
        old = self.options
        try:
            new = old.rebuilt()
        except ConfigError as exc:
            log.error("Keeping the configuration in force, the new one is not valid: %s", exc)
            tally.reload("upstream", False)
            return False
        for warning in new.warnings:
            if warning not in old.warnings:
                log.warning("%s", warning)
        relay = relay_for(new)
        previous = self.relay
        self.options, self.relay = new, relay
        self._use(new, relay)
        retire(previous)
        tally.reload("upstream", True)
        log.log(NOTICE, "reloaded the configuration: new requests go to the API server %s", new.upstream.display)
        return True
