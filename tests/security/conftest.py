"""Fixtures of the security suite (the parts are in the tests.rigs package): a real client or raw socket ->
the real proxy -> an upstream that counts every byte it receives, all on 127.0.0.1 with OS-chosen ports.

Every attack asserts the proxy's answer and `upstream.assert_nothing_forwarded()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.config import ATTACK_AUDIENCE, ATTACK_ISSUER, attack_config_text
from tests.rigs.keys import Mint, TokenFactory, public_pem
from tests.rigs.parsers import Guarded, ParserUpstream, aiohttp_upstream, content_config, starlette_upstream
from tests.rigs.proxy import AttackProxyFactory, Launch, RunningProxy, proxies
from tests.rigs.tapped import TappedUpstream, tapped_upstream


@pytest.fixture
async def upstream() -> AsyncIterator[TappedUpstream]:
    async with tapped_upstream() as up:
        yield up


@pytest.fixture
def public_key_file(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "public.pem"
    path.write_bytes(public_pem(rsa_private_key))
    return path


@pytest.fixture
async def start_proxy(
    tmp_path: Path, upstream: TappedUpstream, public_key_file: Path
) -> AsyncIterator[AttackProxyFactory]:
    """`await start_proxy(sources="cookie, header", head_timeout=0.5)`: options fill the config template;
    `head_timeout` goes to the service."""
    async with proxies() as launch:
        count = 0

        async def start(**options: Any) -> RunningProxy:
            nonlocal count
            service_options = {k: options.pop(k) for k in ("head_timeout",) if k in options}
            path = tmp_path / f"proxy-{count}.yaml"
            count += 1
            path.write_text(attack_config_text(upstream.url, str(public_key_file), **options))
            return await launch(path, grace=1.0, **service_options)

        yield start


@pytest.fixture
async def proxy(start_proxy: AttackProxyFactory) -> RunningProxy:
    return await start_proxy()


@pytest.fixture
def token(mint: Mint) -> TokenFactory:
    """`token("agents:read", sub="alice")`: an RS256 token the proxy accepts (right aud and iss)."""

    def _token(*scopes: str, sub: str = "user-1", **claims: Any) -> str:
        claims = {"sub": sub, "aud": ATTACK_AUDIENCE, "iss": ATTACK_ISSUER, "scopes": list(scopes), **claims}
        return mint(claims, alg="RS256")

    return _token


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


# --- the canonical-body suites: real parsers upstream, shared by a module's tests and hypothesis examples.
# Module-scoped, on the module's event loop: their tests carry `pytest.mark.asyncio(loop_scope="module")`.


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def starlette_app() -> AsyncIterator[ParserUpstream]:
    """FastAPI/Starlette (python-multipart) under uvicorn, answering how it parsed each body."""
    async with starlette_upstream() as up:
        yield up


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aiohttp_app() -> AsyncIterator[ParserUpstream]:
    """aiohttp's `request.post()` / `request.json()`, answering how it parsed each body."""
    async with aiohttp_upstream() as up:
        yield up


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_launch() -> AsyncIterator[Launch]:
    """`await module_launch(config_path)`: proxies that live as long as the module's tests."""
    async with proxies() as launch:
        yield launch


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded(
    starlette_app: ParserUpstream,
    aiohttp_app: ParserUpstream,
    module_launch: Launch,
    hs_secret: bytes,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Guarded]:
    """`guarded["starlette"]`, `guarded["aiohttp"]`: each parser behind a proxy with `content_config`."""
    folder = tmp_path_factory.mktemp("bodies")
    out: dict[str, Guarded] = {}
    for up in (starlette_app, aiohttp_app):
        path = folder / f"{up.name}.yaml"
        path.write_text(content_config(up.url, hs_secret))
        out[up.name] = Guarded((await module_launch(path, grace=1.0)).url, up)
    return out
