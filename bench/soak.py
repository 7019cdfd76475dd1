"""SSE soak: many open event streams through the proxy for a while, sampling the proxy's memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

__all__ = ["SoakResult", "run_soak"]


@dataclass
class SoakResult:
    streams: int
    opened: int = 0
    events: int = 0
    failures: int = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, RSS KiB)
    still_open: int = 0
    idle_kib: int = 0  # before any stream was opened

    def growth(self) -> float:
        """RSS change from the first sample (all streams open) to the last, as a fraction."""
        if len(self.samples) < 2 or self.samples[0][1] == 0:
            return 0.0
        return (self.samples[-1][1] - self.samples[0][1]) / self.samples[0][1]


async def _hold(
    session: aiohttp.ClientSession, url: str, token: str, result: SoakResult, opened: asyncio.Event, need: int
) -> None:
    try:
        async with session.post(
            url, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        ) as resp:
            if resp.status != 200:
                result.failures += 1
                return
            result.opened += 1
            if result.opened >= need:
                opened.set()
            async for line in resp.content:
                if line.startswith(b"data:"):
                    result.events += 1
    except aiohttp.ClientError:
        result.failures += 1


async def _soak(
    url: str, token: str, streams: int, seconds: float, every: float, rss: Callable[[], int]
) -> SoakResult:
    result = SoakResult(streams, idle_kib=rss())
    opened = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_hold(session, url, token, result, opened, streams)) for _ in range(streams)
        ]
        with contextlib.suppress(TimeoutError):  # report what did open; failures are counted
            await asyncio.wait_for(opened.wait(), timeout=60)
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            result.samples.append((elapsed, rss()))
            if elapsed >= seconds:
                break
            await asyncio.sleep(every - (time.monotonic() - start) % every)
        result.still_open = sum(1 for t in tasks if not t.done())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def run_soak(
    url: str, token: str, *, streams: int, seconds: float, every: float, rss: Callable[[], int]
) -> SoakResult:
    """Hold `streams` SSE streams for `seconds`, sampling `rss()` every `every` seconds."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the soak targets loopback only, not {url}")
    return asyncio.run(_soak(url, token, streams, seconds, every, rss))
