"""The supervisor's admin port: /healthz for itself, /readyz over every worker, /metrics added up.

Each worker serves its own admin app on a private Unix socket; the supervisor asks them all at request time.
Metrics are summed across workers sample by sample (histogram buckets included), except a few gauges
where a sum means nothing (readiness: the minimum; key and rule counts: the maximum) and `process_*`,
which stay per worker under a `worker` label. Counters of a worker that exits are kept at the values
of its last scrape, so a total never goes down when a worker is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from authproxy.serve.metrics import exposition

__all__ = ["Fleet", "MetricsMerger", "Worker", "build_supervisor_admin", "worker_get", "worker_ready"]

_ASK_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
_MIN = frozenset(
    {
        "authproxy_key_source_ready",
        "authproxy_config_last_reload_successful",
        "authproxy_config_last_reload_success_timestamp_seconds",
    }
)
_MAX = frozenset({"authproxy_key_source_keys", "authproxy_policy_rules"})
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})

SampleKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


@dataclass(eq=False)
class Worker:
    index: int
    socket: str  # the worker's admin app
    process: asyncio.subprocess.Process | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


async def worker_get(worker: Worker, path: str) -> tuple[int, str] | None:
    """(status, body) of GET `path` on the worker's admin socket; None when it does not answer."""
    try:
        connector = aiohttp.UnixConnector(path=worker.socket)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=_ASK_TIMEOUT) as session,
            session.get(f"http://worker-{worker.index}{path}") as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, OSError):  # TimeoutError is an OSError
        return None


async def worker_ready(worker: Worker, path: str = "/readyz") -> bool:
    answer = await worker_get(worker, path) if worker.alive else None
    return answer is not None and answer[0] == 200


async def _ready_body(worker: Worker) -> dict[str, Any] | None:
    """The worker's /readyz JSON when it answers 200; None when it is not ready."""
    answer = await worker_get(worker, "/readyz") if worker.alive else None
    if answer is None or answer[0] != 200:
        return None
    with contextlib.suppress(ValueError):
        body = json.loads(answer[1])
        if isinstance(body, dict):
            return body
    return {}


def _combiner(family: str) -> Callable[[float, float], float]:
    if family in _MIN:
        return min
    if family in _MAX:
        return max
    return lambda a, b: a + b


class MetricsMerger:
    """Adds the workers' scrapes up; remembers each worker's counters so a dead worker's counts stay."""

    def __init__(self) -> None:
        self._meta: dict[str, tuple[str, str]] = {}  # family -> (type, help)
        self._last: dict[int, dict[tuple[str, SampleKey], float]] = {}  # pid -> its cumulative samples
        self._retired: dict[tuple[str, SampleKey], float] = {}

    def retire(self, pid: int) -> None:
        """The worker `pid` is gone: keep what it had counted."""
        for key, value in self._last.pop(pid, {}).items():
            self._retired[key] = self._retired.get(key, 0.0) + value

    def merge(self, scraped: Mapping[int, tuple[int, str]]) -> list[Metric]:
        """pid -> (worker index, exposition text) in; the merged families out."""
        merged: dict[str, dict[SampleKey, float]] = {}
        for pid, (index, text) in scraped.items():
            last = self._last[pid] = {}
            for family in text_string_to_metric_families(text):
                self._meta[family.name] = (family.type, family.documentation)
                per_worker = family.name.startswith("process_")
                combine = _combiner(family.name)
                values = merged.setdefault(family.name, {})
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue  # a creation time per process has no meaning once added up
                    labels = {**sample.labels, "worker": str(index)} if per_worker else sample.labels
                    key = (sample.name, tuple(sorted(labels.items())))
                    values[key] = combine(values[key], sample.value) if key in values else sample.value
                    if family.type in _CUMULATIVE and not per_worker:
                        last[(family.name, key)] = sample.value
        for (name, key), value in self._retired.items():
            values = merged.setdefault(name, {})
            values[key] = values.get(key, 0.0) + value
        return [self._family(name, values) for name, values in merged.items()]

    def _family(self, name: str, values: dict[SampleKey, float]) -> Metric:
        kind, documentation = self._meta[name]
        family = Metric(name, documentation, kind)
        for (sample, labels), value in values.items():
            family.add_sample(sample, dict(labels), value)
        return family


@dataclass(eq=False)
class Fleet:
    """What the supervisor's admin app reads; the Supervisor keeps it current."""

    workers: list[Worker] = field(default_factory=list)
    restarts: int = 0
    draining: bool = False
    merger: MetricsMerger = field(default_factory=MetricsMerger)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


FLEET = web.AppKey("fleet", Fleet)


async def _healthz(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    if fleet.draining:
        return web.json_response({"status": "draining"}, status=503)
    answers = await asyncio.gather(*(_ready_body(w) for w in fleet.workers))
    ready = [body for body in answers if body is not None]
    if fleet.workers and len(ready) == len(fleet.workers):
        # What the workers add (dry run, the shadow file) is passed on: a supervisor in dry run says so too.
        said = {k: v for body in ready for k, v in body.items() if k != "status"}
        return web.json_response({"status": "ready", **said})
    body = {"status": "workers_not_ready", "ready": len(ready), "workers": len(fleet.workers)}
    return web.json_response(body, status=503)


async def _metrics(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    alive = [w for w in fleet.workers if w.alive and w.process is not None]
    answers = await asyncio.gather(*(worker_get(w, "/metrics") for w in alive))
    scraped = {
        w.process.pid: (w.index, answer[1])
        for w, answer in zip(alive, answers, strict=True)
        if w.process is not None and answer is not None and answer[0] == 200
    }
    families = fleet.merger.merge(scraped)
    families += [
        GaugeMetricFamily("authproxy_workers", "Worker processes configured", len(fleet.workers)),
        GaugeMetricFamily("authproxy_workers_up", "Workers that answered this scrape", len(scraped)),
        CounterMetricFamily("authproxy_worker_restarts", "Workers restarted", fleet.restarts),
    ]
    registry = CollectorRegistry()
    registry.register(_Families(families))
    return exposition(registry)


def build_supervisor_admin(fleet: Fleet) -> web.Application:
    app = web.Application()
    app[FLEET] = fleet
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app
