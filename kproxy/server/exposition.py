"""kproxy's metrics in the Prometheus text format, for the admin listener's ``/metrics``.

In: :data:`kproxy.metrics.tally` (the counts every layer keeps), and what is read at
scrape time from the running server (client connections and requests in flight, from
the HTTP server's live connections). Out: the exposition, made by prometheus_client,
which is imported only here and only when ``--metrics-address`` is given; the standard
``process_*`` and ``python_info`` metrics come with it.

The metrics (every label from a fixed set, see :mod:`kproxy.metrics`)::

    kproxy_requests_total{verb,code}                 requests answered
    kproxy_request_duration_seconds{verb}            histogram; watches, follows, upgrades left out
    kproxy_inflight_requests                         being answered now
    kproxy_long_running{kind}                        watch, follow, upgrade in flight
    kproxy_client_connections                        open client connections
    kproxy_upstream_connections                      open connections to the API server
    kproxy_rejected_total{reason}                    filter, ranges, bad_request, client_auth, origin
    kproxy_upstream_errors_total{reason}             connect, tls, timeout, proxy, reset, protocol
    kproxy_credential_refreshes_total{source,result} exec, oidc, token_file, cert_files
    kproxy_config_reloads_total{what,result}         upstream, authorized_ranges
    kproxy_build_info{version}                       1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kproxy._version import __version__
from kproxy.metrics import DURATION_BUCKETS, Tally, tally

__all__ = ["CONTENT_TYPE", "Exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BOUNDS = [repr(float(b)) for b in DURATION_BUCKETS] + ["+Inf"]


class _Kproxy(Collector):
    def __init__(self, counts: Tally, live: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts
        self._live = live  # (client connections, requests in flight)

    def collect(self) -> Iterator[Metric]:
        t = self._counts
        requests = CounterMetricFamily(
            "kproxy_requests", "Requests answered, by verb and status code.", labels=["verb", "code"]
        )
        for (verb, code), n in sorted(t.requests.items()):
            requests.add_metric([verb, str(code)], n)
        yield requests
        yield self._durations(t)
        connections, inflight = self._live()
        yield GaugeMetricFamily("kproxy_inflight_requests", "Requests being answered.", value=inflight)
        long_running = GaugeMetricFamily(
            "kproxy_long_running", "Long-running requests in flight: watches, followed logs, upgrades.", labels=["kind"]
        )
        for kind, n in t.long_running.items():
            long_running.add_metric([kind], n)
        yield long_running
        yield GaugeMetricFamily("kproxy_client_connections", "Open client connections.", value=connections)
        yield GaugeMetricFamily(
            "kproxy_upstream_connections", "Open connections to the API server.", value=t.upstream_connections
        )
        yield _counter("kproxy_rejected", "Requests refused, by why.", ["reason"], t.rejected)
        yield _counter(
            "kproxy_upstream_errors", "Failures on the way to the API server, by kind.", ["reason"], t.upstream_errors
        )
        yield _counter(
            "kproxy_credential_refreshes",
            "Credentials obtained again while running, by source and result.",
            ["source", "result"],
            t.credential_refreshes,
        )
        yield _counter(
            "kproxy_config_reloads", "Configuration reloads, by what and result.", ["what", "result"], t.config_reloads
        )
        info = GaugeMetricFamily("kproxy_build_info", "kproxy's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

    @staticmethod
    def _durations(t: Tally) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "kproxy_request_duration_seconds",
            "Time to answer a request, by verb (watches, followed logs and upgrades are left out).",
            labels=["verb"],
        )
        for verb, stats in sorted(t.verbs.items()):
            if not stats.timed:
                continue  # only long-running requests of this verb: none in the histogram
            cumulative, running = [], 0
            for bound, n in zip(_BOUNDS, stats.buckets):
                running += n
                cumulative.append((bound, running))
            family.add_metric([verb], cumulative, stats.total)
        return family


def _counter(name: str, text: str, labels: list[str], values: dict[str, int] | dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(name, text, labels=labels)
    for key, n in values.items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], n)
    return family


class Exposition:
    """The registry behind ``/metrics``: kproxy's collector and the process's."""

    def __init__(self, live: Callable[[], tuple[int, int]], counts: Tally = tally) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Kproxy(counts, live))
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)

    def render(self) -> bytes:
        return generate_latest(self._registry)
