"""The admin port (/healthz, /readyz) and the access line: the proxied port serves nothing of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.keys import TokenFactory, public_jwk
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.upstream import RecordingUpstream, serving


async def test_healthz_answers_ok(proxy: RunningProxy, client: aiohttp.ClientSession) -> None:
    async with client.get(proxy.admin_url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_readyz_ready_with_static_keys(proxy: RunningProxy, client: aiohttp.ClientSession) -> None:
    async with client.get(proxy.admin_url + "/readyz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ready"}


async def test_healthz_on_the_proxied_port_goes_through_the_policy(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/healthz") as resp:
        assert resp.status == 401  # not answered locally: the policy wants a token for it
    assert upstream.requests == []
    async with client.get(proxy.url + "/healthz", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["X-Upstream"] == "recorder"
    assert upstream.last().raw_path == "/healthz"


async def test_admin_port_does_not_proxy(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.admin_url + "/agents", headers=auth) as resp:
        assert resp.status == 404
    assert upstream.requests == []


@pytest.fixture
async def held_jwks(rsa_private_key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A JWKS endpoint that answers only once the returned event is set."""
    release = asyncio.Event()

    async def jwks(request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.json_response({"keys": [public_jwk(rsa_private_key, "k1", alg="RS256")]})

    async with serving(web.Server(jwks, access_log=None)) as url:
        try:
            yield f"{url}/jwks.json", release
        finally:
            release.set()  # a fetch still held would keep the server from stopping


async def test_readyz_not_ready_until_remote_keys_load(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    held_jwks: tuple[str, asyncio.Event],
    client: aiohttp.ClientSession,
) -> None:
    url, release = held_jwks
    keys = f"    - jwks_url: {url}\n      allow_insecure_http: true"
    proxy = await start_proxy(upstream.url, algorithms="RS256", keys=keys)
    async with client.get(proxy.admin_url + "/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "keys_not_ready"
    release.set()

    async def ready() -> bool:  # the key source fetches in the background
        return await status_of(client, proxy.admin_url + "/readyz") == 200

    await poll(ready)
    async with client.get(proxy.admin_url + "/healthz") as resp:
        assert resp.status == 200


async def test_readyz_not_ready_while_draining(proxy: RunningProxy, client: aiohttp.ClientSession) -> None:
    proxy.service.state.draining = True
    async with client.get(proxy.admin_url + "/readyz") as resp:
        assert resp.status == 503
        assert (await resp.json())["status"] == "draining"


async def test_access_line_per_request_has_the_decision_and_no_token(
    proxy: RunningProxy, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    bearer = token("proxy:use", sub="alice", jti="jti-1")
    headers = {"Authorization": f"Bearer {bearer}"}
    with structlog.testing.capture_logs() as logs:
        async with client.get(proxy.url + "/items/1?secret=q", headers=headers) as r:
            assert r.status == 200
        async with client.get(proxy.url + "/private/x", headers=headers) as r:
            assert r.status == 403
        async with client.get(proxy.url + "/items/2", headers={"Cookie": f"access_token={bearer}"}) as r:
            assert r.status == 401
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 3
    allowed, denied, missing = lines
    assert allowed["decision"] == "allow"
    assert allowed["path"] == "/items/1"  # the query is never logged
    assert allowed["route"] == "* /**"
    assert allowed["subject"] == "alice"
    assert allowed["status"] == allowed["upstream_status"] == 200
    assert allowed["jti"] == "jti-1"
    assert allowed["latency_ms"] >= 0
    assert denied["decision"] == "deny"
    assert denied["status"] == 403
    assert denied["error"] == "insufficient_scope"
    assert denied["missing_scopes"] == ("private:read",)
    assert denied["upstream_status"] is None
    assert missing["error"] == "missing_token"
    assert bearer not in json.dumps(logs, default=str)
