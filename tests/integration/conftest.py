"""Fixtures of the integration rig (tests/integration/proxyrig.py holds its parts): a real client -> the real
proxy -> a real recording upstream, all on 127.0.0.1 with OS-chosen ports; each fixture tears down what it
started."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from keyutil import Mint
from proxyrig import (
    AUDIENCE,
    AUTHPROXY,
    LogLines,
    ProxyFactory,
    RecordingUpstream,
    RunningProxy,
    ServeFactory,
    ServeProcess,
    TokenFactory,
    config_text,
)

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    up = RecordingUpstream()
    # auto_decompress off: the recorder hashes the bytes that arrived, not what they decode to.
    server = web.Server(up.handle, access_log=None, auto_decompress=False, handler_cancellation=True)
    runner = web.ServerRunner(server, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    up.url = f"http://{host}:{port}"
    yield up
    up.sse_release.set()
    up.slow_release.set()
    await runner.cleanup()


@pytest.fixture
async def start_proxy(tmp_path: Path, hs_secret: bytes) -> AsyncIterator[ProxyFactory]:
    started: list[ProxyService] = []

    async def start(upstream_url: str, **options: Any) -> RunningProxy:
        path = tmp_path / f"proxy-{len(started)}.yaml"
        path.write_text(config_text(upstream_url, hs_secret, **options) + options.get("extra", ""))
        service = ProxyService(RuntimeHolder(load_runtime(path)), grace=float(options.get("grace", 5)))
        started.append(service)
        await service.start()
        host, port = service.proxy_address
        admin_host, admin_port = service.admin_address
        return RunningProxy(service, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", path)

    yield start
    for service in reversed(started):
        await service.stop()


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
    running: list[tuple[ServeProcess, asyncio.Task[None]]] = []

    async def start(config: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        process = await asyncio.create_subprocess_exec(
            AUTHPROXY,
            "serve",
            "-c",
            str(config),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "AUTHPROXY_WORKERS": "1", **(env or {})},  # one process unless a test asks
        )
        assert process.stdout is not None
        proc = ServeProcess(process, LogLines())
        # Keep reading for the whole run: a full pipe would block the proxy's log writes.
        running.append((proc, asyncio.create_task(proc.log.collect(process.stdout))))
        listening = await proc.log.wait_for("listening")
        proc.url = f"http://{listening['proxy']}"
        proc.admin_url = f"http://{listening['admin']}"
        return proc

    yield start
    for proc, reader in running:
        if proc.process.returncode is None:
            proc.process.kill()
        await proc.process.wait()
        await reader
