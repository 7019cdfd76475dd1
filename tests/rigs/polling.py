"""Waiting with a bound instead of sleeping for a guessed time: `poll` on the event loop, `wait_until` for
tests whose thread blocks (subprocess and container tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest


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


def wait_until(condition: Callable[[], bool], what: str, *, within: float = 120, every: float = 0.2) -> None:
    """Re-check `condition` until it holds; fail after `within` seconds. Blocks: not for the event loop."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)
