"""Reloading the upstream: the kubeconfig, the CA files and the proxy settings, taken up while serving.

In: the :class:`~kproxy.config.options.Options` in force and the pipeline it feeds. Out,
on :meth:`UpstreamReload.reload` (SIGHUP, or one of ``Options.reload_paths`` changed):
either the new configuration in force — built whole by :meth:`Options.rebuilt`, so every
file is read and every credential and TLS context checked before anything changes — or,
when that fails, the old one kept and one error line naming the file and the field
(config errors never quote a credential). Counted in ``kproxy_config_reloads_total``.

New requests go out through a new relay, pool and dialer; requests in flight (watches,
exec sessions, streams) finish on the old ones, whose pool is closed at once: its idle
connections go, busy ones are closed when their exchange ends instead of being pooled.
"""

from __future__ import annotations

from collections.abc import Callable

from kproxy.config.options import Options
from kproxy.errors import ConfigError
from kproxy.log import NOTICE, log
from kproxy.metrics import tally
from kproxy.proxy.relay import Relay
from kproxy.upstream.dialer import Dialer
from kproxy.upstream.pool import ConnectionPool

__all__ = ["UpstreamReload", "relay_for"]


def relay_for(options: Options) -> Relay:
    """A relay with a pool and dialer of its own, for ``options.upstream``."""
    return Relay(options.upstream, ConnectionPool(Dialer(options.upstream)))


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
        previous.pool.close()  # idle connections now; those in use when their exchange ends
        tally.reload("upstream", True)
        log.log(NOTICE, "reloaded the configuration: new requests go to the API server %s", new.upstream.display)
        return True
