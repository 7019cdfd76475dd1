"""Fixtures of the security rig (tests/security/attack_rig.py holds its parts): a real client or raw socket ->
the real proxy -> an upstream that counts every byte it receives, all on 127.0.0.1 with OS-chosen ports.

Every attack asserts the proxy's answer and `upstream.assert_nothing_forwarded()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from attack_rig import AUDIENCE, ISSUER, Proxy, ProxyFactory, TappedUpstream, TokenFactory, config_text
from cryptography.hazmat.primitives.asymmetric import rsa
from keyutil import Mint, public_pem

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService


@pytest.fixture
async def upstream() -> AsyncIterator[TappedUpstream]:
    up = TappedUpstream()
    runner = web.ServerRunner(up.server(), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    up.url = f"http://{host}:{port}"
    yield up
    await runner.cleanup()


@pytest.fixture
def public_key_file(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem(rsa_private_key))
    return path


@pytest.fixture
async def start_proxy(
    tmp_path: Path, upstream: TappedUpstream, public_key_file: Path
) -> AsyncIterator[ProxyFactory]:
    """`await start_proxy(sources="cookie, header", head_timeout=0.5)`: options fill the config template;
    `head_timeout` goes to the service."""
    started: list[ProxyService] = []

    async def start(**options: Any) -> Proxy:
        service_options = {k: options.pop(k) for k in ("head_timeout",) if k in options}
        path = tmp_path / f"proxy-{len(started)}.yaml"
        path.write_text(config_text(upstream.url, str(public_key_file), **options))
        service = ProxyService(RuntimeHolder(load_runtime(path)), grace=1.0, **service_options)
        started.append(service)
        await service.start()
        host, port = service.proxy_address
        return Proxy(service, host, port)

    yield start
    for service in reversed(started):
        await service.stop()


@pytest.fixture
async def proxy(start_proxy: ProxyFactory) -> Proxy:
    return await start_proxy()


@pytest.fixture
def token(mint: Mint) -> TokenFactory:
    """`token("agents:read", sub="alice")`: an RS256 token the proxy accepts (right aud and iss)."""

    def _token(*scopes: str, sub: str = "user-1", **claims: Any) -> str:
        claims = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "scopes": list(scopes), **claims}
        return mint(claims, alg="RS256")

    return _token


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session
