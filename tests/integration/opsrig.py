"""Parts shared by the operations tests (metrics, reload, readiness, decision log, workers): a proxy started
in process from config text with reload options, a Prometheus scrape parsed with prometheus_client's own
parser, and polling with a bound instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from authproxy.serve.reload import ReloadOptions

BASE_ROUTES = '    "* /**": [proxy:use]\n    "GET /private/**": [private:read]\n'


@dataclass
class OpsProxy:
    service: ProxyService
    url: str
    admin_url: str
    config_path: Path


class Launch(Protocol):
    async def __call__(
        self, config: Path, *, interval: float | None = None, key_timeout: float = 10.0
    ) -> OpsProxy: ...


@asynccontextmanager
async def ops_launcher() -> AsyncIterator[Launch]:
    """`launch(config_path, interval=…)` starts a ProxyService that watches its files; all stopped on exit."""
    started: list[ProxyService] = []

    async def launch(config: Path, *, interval: float | None = None, key_timeout: float = 10.0) -> OpsProxy:
        options = ReloadOptions(interval=interval, key_timeout=key_timeout)
        service = ProxyService(RuntimeHolder(load_runtime(config)), grace=5.0, reload=options)
        started.append(service)
        await service.start()
        host, port = service.proxy_address
        admin_host, admin_port = service.admin_address
        return OpsProxy(service, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", config)

    try:
        yield launch
    finally:
        for service in reversed(started):
            await service.stop()


async def scrape(client: aiohttp.ClientSession, admin_url: str) -> list[Sample]:
    """Every sample of /metrics, read by prometheus_client's parser (so the text is valid exposition)."""
    async with client.get(admin_url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when there is none)."""
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def poll(check: Callable[[], Awaitable[bool]], *, within: float = 10.0, every: float = 0.02) -> None:
    """Return once `check()` is true; fail after `within` seconds (a bound, not a wait)."""
    async with asyncio.timeout(within):
        while True:  # the condition lives in another process or task: nothing to wait on but time
            if await check():
                return
            await asyncio.sleep(every)


async def status_of(client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> int:
    async with client.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status
