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

from bisect import bisect_right
from typing import Final, Literal

__all__ = [
    "CREDENTIAL_SOURCES",
    "DURATION_BUCKETS",
    "FOLD_AT",
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


# A timed request's duration waits in a list of at most this many before it is counted.
FOLD_AT: Final = 512


class VerbStats:
    """One verb's requests: how many answered with each status code, and how long they
    took (one count per bucket, not cumulative, plus one above the last bound; the sum).

    A timed request is counted in two steps: its duration waits in ``waiting``, in a list
    per status code (one append), and is folded into the counts with the others waiting
    when any count is read, or when its list reaches FOLD_AT (memory stays bounded).
    Folding hundreds at once with C-level builtins (max, sum; sort and bisect for those
    past the first bound) costs less than counting each: the fast path keeps a reference
    in its forwarding verdict and appends inline (benchmarks.instructions)."""

    __slots__ = ("_buckets", "_codes", "_total", "waiting")

    def __init__(self) -> None:
        self._codes: dict[int, int] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self._total = 0.0
        self.waiting: dict[int, list[float]] = {}

    @property
    def codes(self) -> dict[int, int]:
        """Requests by status code."""
        self.fold()
        return self._codes

    @property
    def buckets(self) -> list[int]:
        self.fold()
        return self._buckets

    @property
    def total(self) -> float:
        """The sum of the timed requests' durations, in seconds."""
        self.fold()
        return self._total

    @property
    def timed(self) -> int:
        return sum(self.buckets)

    def count(self, code: int) -> None:
        """A request kept out of the histogram (a long-running one) answered with ``code``."""
        self._codes[code] = self._codes.get(code, 0) + 1

    def time(self, code: int, seconds: float) -> None:
        """A timed request answered with ``code`` in ``seconds``."""
        durations = self.waiting.get(code)
        if durations is None:
            durations = self.waiting[code] = []
        durations.append(seconds)
        if len(durations) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Count the durations waiting."""
        codes, buckets = self._codes, self._buckets
        for code, durations in self.waiting.items():
            if not durations:
                continue
            n = len(durations)
            codes[code] = codes.get(code, 0) + n
            self._total = sum(durations, self._total)  # in the order they came, as one by one
            if max(durations) <= _FIRST_BOUND:  # most answers: all in the first bucket
                buckets[0] += n
            else:
                # Sorted: the durations up to each bound are one search away (a bound
                # belongs to its bucket, as bisect_left(DURATION_BUCKETS, d) counts them).
                durations.sort()
                below = 0
                for i, bound in enumerate(DURATION_BUCKETS):
                    upto = bisect_right(durations, bound, below)
                    buckets[i] += upto - below
                    below = upto
                buckets[-1] += n - below
            durations.clear()


_FIRST_BOUND: Final = DURATION_BUCKETS[0]


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
        if seconds is None:
            stats.count(code)
        else:
            stats.time(code, seconds)

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
