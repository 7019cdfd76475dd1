"""/readyz is 503 until the keys are loaded (and while a key source has never answered with a usable set);
/healthz only says the process is alive. Tested against a real IdP that is down at start, then comes up."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.jwks import running_jwks_server
from tests.rigs.keys import Mint, public_jwk
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import ProxyFactory
from tests.rigs.serve import ServeFactory
from tests.rigs.upstream import RecordingUpstream


async def readyz(client: aiohttp.ClientSession, admin_url: str) -> tuple[int, dict[str, Any]]:
    async with client.get(admin_url + "/readyz") as resp:
        return resp.status, await resp.json()


def jwks_keys(url: str) -> str:
    return f"    - jwks_url: {url}"


@pytest.fixture
def caller(mint: Mint) -> dict[str, str]:
    claims = {"sub": "u", "aud": AUDIENCE, "scopes": ["proxy:use"]}
    return {"Authorization": f"Bearer {mint(claims, alg='RS256', headers={'kid': 'k1'})}"}


async def test_readyz_flips_once_an_idp_that_was_down_comes_up(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    rsa_private_key: rsa.RSAPrivateKey,
    caller: dict[str, str],
) -> None:
    async with running_jwks_server() as idp:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        idp.mode, idp.status = "error", 503
        proxy = await start_proxy(upstream.url, algorithms="RS256", keys=jwks_keys(idp.jwks_url))

        async def failed_once() -> bool:
            samples = await scrape(client, proxy.admin_url)
            return value(samples, "authproxy_key_refresh_failures_total") >= 1

        await poll(failed_once)
        assert await readyz(client, proxy.admin_url) == (
            503,
            {"status": "keys_not_ready", "waiting_for": [idp.jwks_url]},
        )
        assert await status_of(client, proxy.admin_url + "/healthz") == 200  # alive all the same
        assert await status_of(client, proxy.url + "/items", caller) == 401  # no key yet: nothing verifies

        idp.mode = "ok"

        async def ready() -> bool:
            return (await readyz(client, proxy.admin_url))[0] == 200

        await poll(ready, every=0.1)  # the source retries with back-off
        assert await readyz(client, proxy.admin_url) == (200, {"status": "ready"})
        assert await status_of(client, proxy.url + "/items", caller) == 200


@pytest.mark.parametrize("mode", ["garbage", "hang"])
async def test_readyz_stays_503_while_the_idp_gives_no_usable_key_set(
    mode: str,
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    async with running_jwks_server() as idp:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        idp.mode = mode  # type: ignore[assignment]
        proxy = await start_proxy(upstream.url, algorithms="RS256", keys=jwks_keys(idp.jwks_url))
        await idp.wait_hits("/jwks.json", 1)  # it answered (or is answering): still nothing usable
        status, body = await readyz(client, proxy.admin_url)
        assert (status, body["status"]) == (503, "keys_not_ready")
        assert await status_of(client, proxy.admin_url + "/healthz") == 200


@pytest.fixture
def closed_port() -> Iterator[socket.socket]:
    """A bound, not listening socket: connecting to its port is refused until a server listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


async def test_served_process_is_ready_only_once_its_idp_answers(
    serve: ServeFactory,
    upstream: RecordingUpstream,
    tmp_path: Path,
    client: aiohttp.ClientSession,
    closed_port: socket.socket,
    rsa_private_key: rsa.RSAPrivateKey,
    caller: dict[str, str],
) -> None:
    url = f"http://127.0.0.1:{closed_port.getsockname()[1]}/jwks.json"
    config = tmp_path / "serve.yaml"
    config.write_text(config_text(upstream.url, b"", algorithms="RS256", keys=jwks_keys(url)))
    served = await serve(config)
    await served.log.wait_for("jwks_fetch_failed")  # connection refused: the IdP is down
    status, body = await readyz(client, served.admin_url)
    assert (status, body["status"]) == (503, "keys_not_ready")
    assert await status_of(client, served.admin_url + "/healthz") == 200

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [public_jwk(rsa_private_key, "k1", alg="RS256")]})

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, closed_port).start()  # the IdP comes up on the port the proxy knows
    try:

        async def ready() -> bool:
            return (await readyz(client, served.admin_url))[0] == 200

        await poll(ready, every=0.1)
        assert await status_of(client, served.url + "/items", caller) == 200
    finally:
        await runner.cleanup()
    served.process.terminate()
    assert await served.finish() == 0
