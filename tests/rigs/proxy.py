"""The proxy under test, in process: a real ProxyService on 127.0.0.1 with OS-chosen ports, started from a
config file and stopped (drained) when the `proxies()` block ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from authproxy.proxy.protocol import HEAD_TIMEOUT
from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from authproxy.serve.reload import ReloadOptions


@dataclass
class RunningProxy:
    service: ProxyService
    url: str  # the proxied port
    admin_url: str
    config_path: Path

    @property
    def host(self) -> str:
        return self.service.proxy_address[0]

    @property
    def port(self) -> int:
        return self.service.proxy_address[1]


class Launch(Protocol):
    async def __call__(
        self,
        config: Path,
        *,
        interval: float | None = None,
        key_timeout: float = 10.0,
        grace: float = 5.0,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> RunningProxy: ...


class ProxyFactory(Protocol):
    """The integration suite's `start_proxy(upstream_url, **template_options)`."""

    async def __call__(self, upstream_url: str, **options: Any) -> RunningProxy: ...


class AttackProxyFactory(Protocol):
    """The security suite's `start_proxy(**template_options)` (the tapped upstream is implied)."""

    async def __call__(self, **options: Any) -> RunningProxy: ...


@asynccontextmanager
async def proxies() -> AsyncIterator[Launch]:
    """`launch(config_path, interval=…)` starts a ProxyService that watches its files (with `interval`);
    every one started is stopped when the block ends."""
    started: list[ProxyService] = []

    async def launch(
        config: Path,
        *,
        interval: float | None = None,
        key_timeout: float = 10.0,
        grace: float = 5.0,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> RunningProxy:
        options = ReloadOptions(interval=interval, key_timeout=key_timeout)
        runtime = await asyncio.to_thread(load_runtime, config)  # file reads stay off the event loop
        service = ProxyService(RuntimeHolder(runtime), grace=grace, reload=options, head_timeout=head_timeout)
        started.append(service)
        await service.start()
        host, port = service.proxy_address
        admin_host, admin_port = service.admin_address
        return RunningProxy(service, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", config)

    try:
        yield launch
    finally:
        for service in reversed(started):
            await service.stop()
