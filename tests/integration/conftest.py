"""Fixtures of the integration suite (the parts are in the tests.rigs package): a real client -> the real
proxy -> a real recording upstream, all on 127.0.0.1 with OS-chosen ports; each fixture tears down what it
started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.keys import Mint, TokenFactory
from tests.rigs.proxy import Launch, ProxyFactory, RunningProxy, proxies
from tests.rigs.serve import ServeFactory, serve_processes
from tests.rigs.upstream import RecordingUpstream, recording_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    async with recording_upstream() as up:
        yield up


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    """`await launch(config_path, interval=…)`: a proxy from a config file the test wrote."""
    async with proxies() as start:
        yield start


@pytest.fixture
def start_proxy(tmp_path: Path, hs_secret: bytes, launch: Launch) -> ProxyFactory:
    """`await start_proxy(upstream.url, read_timeout="1s", grace=2)`: options fill the config template;
    `grace` goes to the service."""
    count = 0

    async def start(upstream_url: str, **options: Any) -> RunningProxy:
        nonlocal count
        grace = float(options.pop("grace", 5))
        path = tmp_path / f"proxy-{count}.yaml"
        count += 1
        extra = options.pop("extra", "")
        path.write_text(config_text(upstream_url, hs_secret, **options) + extra)
        return await launch(path, grace=grace)

    return start


@pytest.fixture
async def proxy(start_proxy: ProxyFactory, upstream: RecordingUpstream) -> RunningProxy:
    return await start_proxy(upstream.url)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # auto_decompress off: the test sees the bytes the proxy sent, as it sent them.
    async with aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def token(mint: Mint) -> TokenFactory:
    """`token("proxy:use", sub="alice", session_id="s1")`: an HS256 token the test proxy accepts."""

    def _token(*scopes: str, sub: str = "user-1", **claims: Any) -> str:
        return mint({"sub": sub, "aud": AUDIENCE, "scopes": list(scopes), **claims})

    return _token


@pytest.fixture
def auth(token: TokenFactory) -> dict[str, str]:
    """Headers of a caller allowed everywhere under `* /**`."""
    return {"Authorization": f"Bearer {token('proxy:use')}"}


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start `authproxy serve -c CONFIG ARGS…`; returns once it logged `listening` (ports parsed from it)."""
    async with serve_processes() as start:
        yield start
