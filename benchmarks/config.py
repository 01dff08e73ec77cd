"""Run sizes: the default run, ``--quick``, and overrides from the command line.

The defaults are sized so that the default run stays under 10 minutes and ``--quick``
under 2 minutes on a 2-core machine (see ``estimate_seconds``); the smoke test shrinks
everything further through the same overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["DEFAULT", "OBSERVED", "QUICK", "Config", "TARGETS"]

# The things compared; "direct" is wrk/clients straight at nginx's plain-HTTP port
# (and, for the 10 MB list, curl at its TLS port as well). "kproxy-observed" is kproxy
# with metrics served and the JSON access log written, measured in the small GET only:
# its row is the share of plain kproxy's throughput it keeps.
OBSERVED = "kproxy-observed"
TARGETS: tuple[str, ...] = ("direct", "kubectl", "kproxy", OBSERVED)


@dataclass(frozen=True)
class Config:
    rounds: int
    # wrk runs last whole seconds.
    get_seconds: int  # one wrk run of the small GET, per concurrency and target
    list_seconds: int  # one wrk run of the 10 MB list (and of its gzip variant; and curl's over TLS)
    warmup_seconds: int  # per proxy per round, before anything is measured; 0 = none
    connections: tuple[int, ...] = (1, 16, 64)
    watches: int = 1000
    big_watches: int = 5000  # the second watch scenario (0: skipped)
    h2_streams: int = 100  # nginx's HTTP/2 streams per connection: kube-apiserver's limit since 1.29
    burst_connections: int = 64  # the cold burst: wrk on a proxy started a moment ago
    burst_seconds: int = 2
    cold_watches: int = 250  # watches opened at once on a proxy started a moment ago ...
    cold_runs: int = 3  # ... this many times, a new proxy each time (the median counts)
    watch_idle_seconds: float = 1.0  # held idle before RSS and idle CPU are read
    event_samples: int = 30  # single timestamped events sent while all watches are open
    broadcasts: int = 3  # events sent to every open watch at once
    echo_seconds: float = 2.0  # each of: round-trip latency, then throughput
    list_pods: int = 3700  # ~2.7 KB each → a ~10 MB list
    out_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent / "results")
    targets: tuple[str, ...] = TARGETS
    pin: bool = True  # load generator + upstream on core 0, the proxy on core 1
    # Measure kproxy as committed at this git ref rather than the working tree, so that
    # edits made during a run cannot change what is measured half-way through.
    kproxy_ref: str | None = None

    def with_overrides(self, **changes: object) -> Config:
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given)  # type: ignore[arg-type]

    def estimate_seconds(self) -> float:
        """A rough wall-clock estimate, for the progress line and the time budget."""
        proxies = sum(1 for t in self.targets if t != "direct")
        full = [t for t in self.targets if t != OBSERVED]
        per_target = (
            len(self.connections) * (self.get_seconds + 0.15)
            + 2 * (self.list_seconds + 0.15)
            + 2 * self.echo_seconds
            + self.watch_idle_seconds
            + self.event_samples * 0.03
            + self.broadcasts * 0.15
            + 0.3
        )
        # Watches open at ~2,000/s over HTTP/2; each cold run starts a proxy (~0.5 s).
        watches = (self.watches + self.big_watches) / 2000 + self.big_watches / 5000 * 2
        cold = self.burst_seconds + 1.0 + self.cold_runs * (0.6 + self.cold_watches / 2000)
        per_round = len(full) * (per_target + watches) + proxies * (self.warmup_seconds + 0.6 + cold)
        if OBSERVED in self.targets:
            per_round += len(self.connections) * (self.get_seconds + 0.15)
        if "direct" in self.targets:
            per_round += self.list_seconds + 0.15  # the list over TLS with curl
        return 5.0 + self.rounds * per_round


DEFAULT = Config(rounds=5, get_seconds=4, list_seconds=3, warmup_seconds=1)
QUICK = Config(
    rounds=3,
    get_seconds=1,
    list_seconds=1,
    warmup_seconds=1,
    event_samples=15,
    broadcasts=2,
    echo_seconds=0.5,
)
