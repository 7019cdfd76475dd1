"""Prometheus metrics of one process: a private registry, an observer fed the access record of each request,
and a collector that reads, at scrape time, state kept elsewhere (key sources, reloads, in-flight counts).

Per request the cost is one dict lookup and a few pre-bound child updates. Label values come from bounded
sets only: the decision, the status, the route pattern as written in the policy (or "(unmatched)"), never
a raw path or a subject.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from authproxy.auth.jwks import JwksSource
from authproxy.proxy.trial import verdict

if TYPE_CHECKING:
    from prometheus_client.metrics import Counter as CounterChild
    from prometheus_client.metrics import Histogram as HistogramChild

    from authproxy.auth.keys import RemoteKeys
    from authproxy.policy.rate_limit import RateLimitState
    from authproxy.proxy.frontend import AccessRecord
    from authproxy.runtime import RuntimeHolder

__all__ = ["UNMATCHED", "UPSTREAM_ERROR_KINDS", "LiveCounts", "Metrics", "exposition"]

UNMATCHED = "(unmatched)"
UPSTREAM_ERROR_KINDS = ("unavailable", "timeout", "interrupted")
# Whole requests include streams that stay open for minutes (agent runs, SSE), hence the long tail.
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# The decision alone is microseconds, unless an unknown kid makes it wait for a key refresh.
_DECISION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1)


class LiveCounts(Protocol):
    """What the proxy handler counts as it goes (read at scrape time, never pushed)."""

    in_flight: int
    websockets_open: int


@dataclass(frozen=True, slots=True)
class _Bound:
    requests: CounterChild
    duration: HistogramChild
    decision: HistogramChild | None  # None when no decision was made (a failure before it)


def exposition(registry: CollectorRegistry) -> web.Response:
    """The text format (0.0.4, which every Prometheus version reads) of everything `registry` holds."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class Metrics:
    """The metrics of one proxy process; `observe` is an access-record observer, `route` serves /metrics."""

    def __init__(self, holder: RuntimeHolder) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter(
            "authproxy_requests",
            "Requests answered, by decision (allow/deny/none), status and matched route pattern",
            ("decision", "status", "route"),
            registry=r,
        )
        self._duration = Histogram(
            "authproxy_request_duration_seconds",
            "Whole request, first byte in to last byte out, by decision",
            ("decision",),
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self._decision = Histogram(
            "authproxy_decision_duration_seconds",
            "The authorization decision alone (target, route, token, scopes), by decision",
            ("decision",),
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self._denials = Counter("authproxy_denials", "Denials by error code", ("error",), registry=r)
        self._upstream_errors = Counter(
            "authproxy_upstream_errors",
            "Upstream failures: unavailable (502), timeout (504), interrupted (after the answer began)",
            ("kind",),
            registry=r,
        )
        self._upstream_by_kind = {kind: self._upstream_errors.labels(kind) for kind in UPSTREAM_ERROR_KINDS}
        self._rate_limited = Counter(
            "authproxy_rate_limited",
            "Requests refused with 429, by the limit that refused",
            ("limit",),
            registry=r,
        )
        self._limit_store_errors = Counter(
            "authproxy_rate_limit_backend_errors",
            "Rate-limit store failures, by what on_error made of the request (denied/allowed)",
            ("request",),
            registry=r,
        )
        self._trial = _TrialCounters(r)
        self._denial_by_error: dict[str | None, CounterChild] = {}
        self._children: dict[tuple[str, int, str], _Bound] = {}
        self.reloads = _ReloadTally()
        self._retired: dict[str, list[int]] = {}  # key source URL -> [refreshes, failures] of closed sources
        self.live: LiveCounts | None = None
        r.register(_StateCollector(self, holder))
        ProcessCollector(registry=r)

    def count_live(self, live: LiveCounts) -> None:
        """Report the in-flight and WebSocket counts `live` keeps (the proxy handler)."""
        self.live = live

    def route(self) -> web.RouteDef:
        async def serve(request: web.Request) -> web.Response:
            del request
            return exposition(self.registry)

        return web.get("/metrics", serve)

    def observe(self, record: AccessRecord) -> None:
        d = record.decision
        label = "none" if d is None else ("allow" if d.allowed else "deny")
        key = (label, record.status, UNMATCHED if d is None or d.route is None else d.route)
        bound = self._children.get(key)
        if bound is None:
            bound = self._bind(key)
        bound.requests.inc()
        bound.duration.observe(record.latency_ms / 1000)
        if bound.decision is not None:
            bound.decision.observe(record.decision_ms / 1000)
        if d is not None and not d.allowed and record.would is None:  # a dry run's refusal was not answered
            self._denied(d.error)
        self._trial.observe(record)
        if d is not None and d.rate_limit is not None:
            self._limits(d.allowed, d.rate_limit)
        kind = record.upstream_error or ("interrupted" if record.outcome == "upstream_failed" else None)
        if kind is not None:
            self._upstream_by_kind[kind].inc()

    def _bind(self, key: tuple[str, int, str]) -> _Bound:
        label, status, route = key
        bound = _Bound(
            self._requests.labels(label, str(status), route),
            self._duration.labels(label),
            self._decision.labels(label) if label != "none" else None,
        )
        self._children[key] = bound
        return bound

    def _limits(self, allowed: bool, state: RateLimitState) -> None:
        if state.backend_error:
            self._limit_store_errors.labels("allowed" if allowed else "denied").inc()
        elif (refused := state.refused_by) is not None:
            self._rate_limited.labels(refused.name).inc()

    def _denied(self, error: str | None) -> None:
        child = self._denial_by_error.get(error)
        if child is None:
            child = self._denial_by_error[error] = self._denials.labels(error or "unknown")
        child.inc()

    def retire_key_sources(self, sources: Iterable[RemoteKeys]) -> None:
        """Keep the counts of key sources a reload closes, so the counters never go down."""
        for source in sources:
            if isinstance(source, JwksSource):
                tally = self._retired.setdefault(source.url, [0, 0])
                tally[0] += source.refreshes
                tally[1] += source.fetch_failures

    def key_source_counts(self, holder: RuntimeHolder) -> dict[str, list[int]]:
        """URL -> [refreshes, failures, ready (0/1), keys]; ready and keys are -1 for retired-only URLs."""
        counts = {url: [refreshes, failures, -1, -1] for url, (refreshes, failures) in self._retired.items()}
        for source in {id(s): s for _, s in holder.current.remotes}.values():
            if isinstance(source, JwksSource):
                row = counts.setdefault(source.url, [0, 0, -1, -1])
                row[0] += source.refreshes
                row[1] += source.fetch_failures
                row[2] = max(row[2], int(source.ready))
                row[3] = max(row[3], 0) + len(source.entries)
        return counts


class _TrialCounters:
    """A policy being tried (proxy/trial.py): dry run refusals, the shadow's and the upstream's disagreements.
    Labels: the route pattern, an error code, `allow` or a status: bounded sets all."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.dry_run = Counter(
            "authproxy_dry_run_refusals",
            "Requests dry run forwarded that the policy would have refused, by route and error",
            ("route", "error"),
            registry=r,
        )
        self.shadow = Counter(
            "authproxy_shadow_divergence",
            "Requests the shadow policy decided otherwise (allow or the status) than the enforced one",
            ("route", "enforced", "shadow"),
            registry=r,
        )
        self.upstream = Counter(
            "authproxy_upstream_divergence",
            "Answers of the upstream that disagree with our decision: an allow it refused (401/403), or in "
            "dry run a refusal it answered 2xx",
            ("route", "ours", "upstream"),
            registry=r,
        )

    def observe(self, record: AccessRecord) -> None:
        if (would := record.would) is not None:
            self.dry_run.labels(_route(would.route), would.error or "unknown").inc()
        if (compared := record.shadow) is not None:
            e, s = compared.enforced, compared.shadow
            self.shadow.labels(_route(e.route or s.route), verdict(e), verdict(s)).inc()
        if record.divergence is not None and record.decision is not None:
            self.upstream.labels(_route(record.decision.route), *record.divergence).inc()


def _route(route: str | None) -> str:
    return UNMATCHED if route is None else route


class _ReloadTally:
    """What reload.Reloader reports; read by the collector."""

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0
        self.last_ok = True
        self.last_success = time.time()  # the initial load counts as the first success

    def success(self) -> None:
        self.succeeded += 1
        self.last_ok = True
        self.last_success = time.time()

    def failure(self) -> None:
        self.failed += 1
        self.last_ok = False


class _StateCollector(Collector):
    def __init__(self, metrics: Metrics, holder: RuntimeHolder) -> None:
        self._metrics = metrics
        self._holder = holder

    def collect(self) -> Iterator[Metric]:
        live, reloads = self._metrics.live, self._metrics.reloads
        in_flight, websockets = (live.in_flight, live.websockets_open) if live is not None else (0, 0)
        yield GaugeMetricFamily("authproxy_requests_in_flight", "Requests being handled", in_flight)
        yield GaugeMetricFamily("authproxy_websockets_open", "WebSocket relays open", websockets)
        yield from self._key_sources()
        yield CounterMetricFamily(
            "authproxy_config_reloads", "Successful configuration reloads", reloads.succeeded
        )
        yield CounterMetricFamily(
            "authproxy_config_reload_failures", "Reloads refused; the running policy stayed", reloads.failed
        )
        yield GaugeMetricFamily(
            "authproxy_config_last_reload_successful", "1 if the last reload succeeded", int(reloads.last_ok)
        )
        yield GaugeMetricFamily(
            "authproxy_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (Unix time)",
            reloads.last_success,
        )
        rules = self._holder.current.table.rule_count
        yield GaugeMetricFamily("authproxy_policy_rules", "Rules in the running policy", rules)

    def _key_sources(self) -> Iterator[Metric]:
        refreshes = CounterMetricFamily(
            "authproxy_key_refreshes", "Successful key set fetches (changed or not)", labels=("source",)
        )
        failures = CounterMetricFamily(
            "authproxy_key_refresh_failures", "Key set fetches that failed", labels=("source",)
        )
        ready = GaugeMetricFamily(
            "authproxy_key_source_ready", "1 once the key source has loaded a key set", labels=("source",)
        )
        keys = GaugeMetricFamily("authproxy_key_source_keys", "Usable keys held", labels=("source",))
        for url, (n_refreshes, n_failures, is_ready, n_keys) in sorted(
            self._metrics.key_source_counts(self._holder).items()
        ):
            refreshes.add_metric((url,), n_refreshes)
            failures.add_metric((url,), n_failures)
            if is_ready >= 0:  # a source no longer configured keeps its counters, not its state
                ready.add_metric((url,), is_ready)
                keys.add_metric((url,), n_keys)
        yield from (refreshes, failures, ready, keys)
