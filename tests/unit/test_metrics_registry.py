"""metrics.py and the supervisor's merge (workers_admin.py): label values from bounded sets, counters that
never go down across reloads or worker restarts, and text that prometheus_client's parser reads back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from authproxy.config import load_text
from authproxy.policy.decision import Decision
from authproxy.proxy.frontend import AccessRecord
from authproxy.runtime import RuntimeHolder, build_runtime
from authproxy.serve.metrics import UNMATCHED, Metrics
from authproxy.serve.workers_admin import MetricsMerger

CONFIG = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [RS256]
  keys:
    - jwks_url: http://127.0.0.1:1/jwks.json
  audience: api
policy:
  routes:
    "GET /items/{id}": [items:read]
"""


def holder(text: str = CONFIG) -> RuntimeHolder:
    return RuntimeHolder(build_runtime(load_text(text, "/etc/authproxy/config.yaml", {})))


def record(
    status: int, decision: Decision | None, *, outcome: str = "answered", upstream_error: str | None = None
) -> AccessRecord:
    return AccessRecord(
        "GET",
        "/items/secret-id",
        status=status,
        decision=decision,
        outcome=outcome,
        latency_ms=12.0,
        decision_ms=0.2,
        upstream_error=upstream_error,
    )


ALLOW = Decision(True, None, "scopes satisfied", route="GET /items/{id}", subject="alice")
DENY = Decision(False, "insufficient_scope", "short", route="GET /items/{id}", subject="alice")
UNROUTED = Decision(False, "bad_request", "dot-segment")


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_requests_are_labelled_by_decision_status_and_route_pattern() -> None:
    metrics = Metrics(holder())
    for _ in range(3):
        metrics.observe(record(200, ALLOW))
    metrics.observe(record(403, DENY))
    metrics.observe(record(400, UNROUTED))
    metrics.observe(record(500, None, outcome="error"))
    requests = "authproxy_requests_total"
    assert sample(metrics, requests, decision="allow", status="200", route="GET /items/{id}") == 3
    assert sample(metrics, requests, decision="deny", status="403", route="GET /items/{id}") == 1
    assert sample(metrics, requests, decision="deny", status="400", route=UNMATCHED) == 1
    assert sample(metrics, requests, decision="none", status="500", route=UNMATCHED) == 1
    assert sample(metrics, "authproxy_denials_total", error="insufficient_scope") == 1
    assert sample(metrics, "authproxy_denials_total", error="bad_request") == 1
    assert sample(metrics, "authproxy_request_duration_seconds_sum", decision="allow") == 3 * 0.012
    assert sample(metrics, "authproxy_decision_duration_seconds_count", decision="allow") == 3
    assert sample(metrics, "authproxy_decision_duration_seconds_count", decision="none") is None
    text = generate_latest(metrics.registry).decode()
    assert "secret-id" not in text and "alice" not in text


def test_upstream_errors_are_counted_by_kind_and_every_kind_is_exported_from_the_start() -> None:
    metrics = Metrics(holder())
    for kind in ("unavailable", "timeout", "interrupted"):
        assert sample(metrics, "authproxy_upstream_errors_total", kind=kind) == 0
    metrics.observe(record(504, ALLOW, upstream_error="timeout"))
    metrics.observe(record(502, ALLOW, upstream_error="unavailable"))
    metrics.observe(record(200, ALLOW, outcome="upstream_failed"))
    metrics.observe(record(200, ALLOW, outcome="client_gone"))
    for kind in ("unavailable", "timeout", "interrupted"):
        assert sample(metrics, "authproxy_upstream_errors_total", kind=kind) == 1


@dataclass
class Live:
    in_flight: int = 0
    websockets_open: int = 0


def test_live_counts_are_read_at_scrape_time() -> None:
    metrics = Metrics(holder())
    assert sample(metrics, "authproxy_requests_in_flight") == 0
    live = Live()
    metrics.count_live(live)
    live.in_flight, live.websockets_open = 7, 2
    assert sample(metrics, "authproxy_requests_in_flight") == 7
    assert sample(metrics, "authproxy_websockets_open") == 2


def test_key_source_counters_survive_the_reload_that_retires_the_source() -> None:
    running = holder()
    metrics = Metrics(running)
    [(_, source)] = running.current.remotes
    source.refreshes, source.fetch_failures = 4, 2  # type: ignore[attr-defined]
    url = "http://127.0.0.1:1/jwks.json"
    assert sample(metrics, "authproxy_key_refreshes_total", source=url) == 4
    assert sample(metrics, "authproxy_key_source_ready", source=url) == 0
    assert sample(metrics, "authproxy_key_source_keys", source=url) == 0

    replaced = holder(CONFIG.replace("127.0.0.1:1/", "127.0.0.1:2/"))
    running.swap(replaced.current)
    metrics.retire_key_sources([source])
    assert sample(metrics, "authproxy_key_refreshes_total", source=url) == 4
    assert sample(metrics, "authproxy_key_refresh_failures_total", source=url) == 2
    assert sample(metrics, "authproxy_key_source_ready", source=url) is None  # not configured any more
    assert sample(metrics, "authproxy_key_source_ready", source="http://127.0.0.1:2/jwks.json") == 0


def test_reload_tally_is_exported() -> None:
    metrics = Metrics(holder())
    metrics.reloads.success()
    metrics.reloads.failure()
    assert sample(metrics, "authproxy_config_reloads_total") == 1
    assert sample(metrics, "authproxy_config_reload_failures_total") == 1
    assert sample(metrics, "authproxy_config_last_reload_successful") == 0
    assert sample(metrics, "authproxy_policy_rules") == 1


def worker_text(requests: float, ready: float, rules: float, rss: float) -> str:
    return f"""\
# HELP authproxy_requests_total Requests
# TYPE authproxy_requests_total counter
authproxy_requests_total{{decision="allow",route="r",status="200"}} {requests}
authproxy_requests_created{{decision="allow",route="r",status="200"}} 1.7e9
# HELP authproxy_request_duration_seconds Whole request
# TYPE authproxy_request_duration_seconds histogram
authproxy_request_duration_seconds_bucket{{decision="allow",le="0.1"}} {requests}
authproxy_request_duration_seconds_bucket{{decision="allow",le="+Inf"}} {requests}
authproxy_request_duration_seconds_count{{decision="allow"}} {requests}
authproxy_request_duration_seconds_sum{{decision="allow"}} {requests / 100}
# HELP authproxy_key_source_ready ready
# TYPE authproxy_key_source_ready gauge
authproxy_key_source_ready{{source="u"}} {ready}
# HELP authproxy_policy_rules rules
# TYPE authproxy_policy_rules gauge
authproxy_policy_rules {rules}
# HELP authproxy_requests_in_flight in flight
# TYPE authproxy_requests_in_flight gauge
authproxy_requests_in_flight 1.0
# HELP process_resident_memory_bytes rss
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
"""


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def merged(merger: MetricsMerger, scraped: dict[int, tuple[int, str]]) -> dict[SampleKey, float]:
    """The merge, rendered and parsed back: what Prometheus would read."""
    registry = CollectorRegistry()
    registry.register(_Families(merger.merge(scraped)))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def test_merge_adds_counters_and_buckets_and_keeps_gauges_meaningful() -> None:
    merger = MetricsMerger()
    out = merged(merger, {101: (0, worker_text(3, 1, 5, 100)), 102: (1, worker_text(4, 0, 5, 200))})
    allow = (("decision", "allow"), ("route", "r"), ("status", "200"))
    assert out[("authproxy_requests_total", allow)] == 7
    assert out[("authproxy_request_duration_seconds_bucket", (("decision", "allow"), ("le", "+Inf")))] == 7
    assert out[("authproxy_request_duration_seconds_sum", (("decision", "allow"),))] == 0.07
    assert out[("authproxy_key_source_ready", (("source", "u"),))] == 0  # not ready until every worker is
    assert out[("authproxy_policy_rules", ())] == 5  # the same policy, not 10 rules
    assert out[("authproxy_requests_in_flight", ())] == 2
    assert out[("process_resident_memory_bytes", (("worker", "0"),))] == 100
    assert out[("process_resident_memory_bytes", (("worker", "1"),))] == 200
    assert not [key for key in out if key[0].endswith("_created")]


def test_merge_keeps_the_counts_of_a_worker_that_exited() -> None:
    merger = MetricsMerger()
    merged(merger, {101: (0, worker_text(3, 1, 5, 100)), 102: (1, worker_text(4, 1, 5, 100))})
    merger.retire(101)  # worker 0 died; its replacement starts from zero
    out = merged(merger, {103: (0, worker_text(1, 1, 5, 100)), 102: (1, worker_text(6, 1, 5, 100))})
    allow = (("decision", "allow"), ("route", "r"), ("status", "200"))
    assert out[("authproxy_requests_total", allow)] == 3 + 1 + 6
    assert out[("authproxy_request_duration_seconds_count", (("decision", "allow"),))] == 10
    assert out[("authproxy_requests_in_flight", ())] == 2  # gauges: only the living
    merger.retire(999)  # a worker never scraped leaves nothing behind
    assert merged(merger, {})[("authproxy_requests_total", allow)] == 3
