"""Process-wide tallies behind kproxy's metrics: plain counters any layer may bump, cheaply.

In: events — a request answered (counted only while metrics are served), a request
refused, an upstream error, a credential refresh, a configuration reload, an upstream
connection opened or closed. Out: the counts in :data:`tally`, which
:mod:`kproxy.server.exposition` presents as Prometheus metrics when ``--metrics-address``
is given. prometheus_client is not imported here: it costs start-up time, and a dict
increment costs less than its locks on the hot path.

Every label takes its values from a fixed set (the tuples below, the verbs of
:mod:`kproxy.policy.request_info`, HTTP status codes): never a path, a user or a
namespace. The tallies are per process, like the ``process_*`` metrics: two servers
embedded in one process count together.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final, Literal

__all__ = [
    "CREDENTIAL_SOURCES",
    "DURATION_BUCKETS",
    "LONG_RUNNING",
    "REJECT_REASONS",
    "RELOADS",
    "UPSTREAM_ERRORS",
    "Tally",
    "VerbStats",
    "tally",
]

RejectReason = Literal["filter", "ranges", "bad_request", "client_auth", "origin"]
UpstreamErrorKind = Literal["connect", "tls", "timeout", "proxy", "reset", "protocol"]
CredentialSource = Literal["exec", "oidc", "token_file", "cert_files"]
Reload = Literal["upstream", "authorized_ranges"]
LongRunning = Literal["watch", "follow", "upgrade"]

REJECT_REASONS: Final[tuple[RejectReason, ...]] = ("filter", "ranges", "bad_request", "client_auth", "origin")
UPSTREAM_ERRORS: Final[tuple[UpstreamErrorKind, ...]] = ("connect", "tls", "timeout", "proxy", "reset", "protocol")
CREDENTIAL_SOURCES: Final[tuple[CredentialSource, ...]] = ("exec", "oidc", "token_file", "cert_files")
RELOADS: Final[tuple[Reload, ...]] = ("upstream", "authorized_ranges")
LONG_RUNNING: Final[tuple[LongRunning, ...]] = ("watch", "follow", "upgrade")
RESULTS: Final = ("success", "failure")
# kube-apiserver's apiserver_request_duration_seconds buckets (k8s.io/apiserver
# pkg/endpoints/metrics/metrics.go), so the two can be read side by side.
# Floats, all of them: bisect compares a float duration with each, fastest float to float.
DURATION_BUCKETS: Final = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
    30.0, 45.0, 60.0,
)  # fmt: skip


class VerbStats:
    """One verb's requests: how many answered with each status code, and how long they
    took (one count per bucket, not cumulative, plus one above the last bound; the sum).
    The fast path keeps a reference (in its forwarding verdict) and counts into it."""

    __slots__ = ("buckets", "codes", "total")

    def __init__(self) -> None:
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    @property
    def timed(self) -> int:
        return sum(self.buckets)


class Tally:
    """The counts (see the module docstring)."""

    def __init__(self) -> None:
        self.verbs: dict[str, VerbStats] = {}
        self.long_running: dict[str, int] = dict.fromkeys(LONG_RUNNING, 0)
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.upstream_errors: dict[str, int] = dict.fromkeys(UPSTREAM_ERRORS, 0)
        self.credential_refreshes: dict[tuple[str, str], int] = {
            (source, result): 0 for source in CREDENTIAL_SOURCES for result in RESULTS
        }
        self.config_reloads: dict[tuple[str, str], int] = {(what, result): 0 for what in RELOADS for result in RESULTS}
        self.upstream_connections = 0

    def stats(self, verb: str) -> VerbStats:
        stats = self.verbs.get(verb)
        if stats is None:
            stats = self.verbs[verb] = VerbStats()
        return stats

    def request(self, verb: str, code: int, seconds: float | None) -> None:
        """One request answered; ``seconds`` None for those kept out of the histogram."""
        stats = self.stats(verb)
        stats.codes[code] = stats.codes.get(code, 0) + 1
        if seconds is not None:
            stats.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
            stats.total += seconds

    @property
    def requests(self) -> dict[tuple[str, int], int]:
        """Requests answered by (verb, status code)."""
        return {(verb, code): n for verb, stats in self.verbs.items() for code, n in stats.codes.items()}

    def reject(self, reason: RejectReason) -> None:
        self.rejected[reason] += 1

    def upstream_error(self, kind: UpstreamErrorKind) -> None:
        self.upstream_errors[kind] += 1

    def refresh(self, source: CredentialSource, ok: bool) -> None:
        self.credential_refreshes[source, "success" if ok else "failure"] += 1

    def reload(self, what: Reload, ok: bool) -> None:
        self.config_reloads[what, "success" if ok else "failure"] += 1


tally = Tally()
