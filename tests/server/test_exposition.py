"""kproxy.server.exposition: a tally rendered in the Prometheus text format and parsed back."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kproxy._version import __version__
from kproxy.metrics import Tally
from kproxy.server.exposition import CONTENT_TYPE, Exposition


def parse(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_every_metric_with_its_labels() -> None:
    t = Tally()
    t.request("get", 200, 0.003)
    t.request("get", 200, 0.3)
    t.request("watch", 200, None)
    t.long_running["follow"] = 2
    t.reject("filter")
    t.upstream_error("tls")
    t.refresh("exec", True)
    t.reload("upstream", False)
    t.upstream_connections = 3
    samples = parse(Exposition(lambda: (5, 1), t).render())

    def v(name: str, **labels: str) -> float:
        return samples[name, frozenset(labels.items())]

    assert v("kproxy_requests_total", verb="get", code="200") == 2
    assert v("kproxy_requests_total", verb="watch", code="200") == 1
    assert v("kproxy_request_duration_seconds_bucket", verb="get", le="0.005") == 1
    assert v("kproxy_request_duration_seconds_bucket", verb="get", le="0.4") == 2  # cumulative
    assert v("kproxy_request_duration_seconds_bucket", verb="get", le="+Inf") == 2
    assert v("kproxy_request_duration_seconds_count", verb="get") == 2
    assert abs(v("kproxy_request_duration_seconds_sum", verb="get") - 0.303) < 1e-9
    assert ("kproxy_request_duration_seconds_count", frozenset({("verb", "watch")})) not in samples
    assert v("kproxy_inflight_requests") == 1 and v("kproxy_client_connections") == 5
    assert v("kproxy_long_running", kind="follow") == 2 and v("kproxy_long_running", kind="watch") == 0
    assert v("kproxy_upstream_connections") == 3
    assert v("kproxy_rejected_total", reason="filter") == 1 and v("kproxy_rejected_total", reason="origin") == 0
    assert v("kproxy_upstream_errors_total", reason="tls") == 1
    assert v("kproxy_credential_refreshes_total", source="exec", result="success") == 1
    assert v("kproxy_config_reloads_total", what="upstream", result="failure") == 1
    assert v("kproxy_build_info", version=__version__) == 1
    assert v("process_open_fds") > 0 and any(name == "python_info" for name, _ in samples)
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
