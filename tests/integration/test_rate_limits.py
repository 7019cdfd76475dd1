"""Rate limits end to end: a real proxy, a real upstream, and a real redis-server shared by two
`authproxy serve` processes. Every refusal is checked for status, body, headers and that nothing reached
the upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from opsrig import Launch, ops_launcher, poll, scrape, status_of, value
from proxyrig import RecordingUpstream, ServeFactory, TokenFactory, config_text
from redisrig import RedisServer, redis_server_binary

ROUTE = "* /**"  # the rig's catch-all rule (scope proxy:use)


def limited_config(upstream: str, secret: bytes, backend: str = "memory", on_error: str = "deny") -> str:
    # 3 per hour: no token comes back while a test runs, so every count below is exact.
    return config_text(upstream, secret) + (
        "rate_limits:\n"
        f"  backend: {backend}\n"
        f"  redis: {{timeout: 2s, on_error: {on_error}}}\n"
        "  default: 100/min\n"
        "  routes:\n"
        f'    "{ROUTE}": {{rate: 3/hour, burst: 3}}\n'
    )


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    async with ops_launcher() as start:
        yield start


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(redis_server_binary(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def bearer(token: TokenFactory, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('proxy:use', sub=sub)}"}


async def assert_rate_limited(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    """One request over the limit: the whole 429, as a client sees it."""
    async with client.post(url, headers=headers, data=b"x" * 4096) as resp:
        body = await resp.read()
        assert resp.status == 429
        assert resp.headers["Content-Type"] == "application/json"
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 1200  # one token in 20 minutes at 3/hour
        assert resp.headers["RateLimit-Policy"] == f'"default";q=100;w=60, "{ROUTE}";q=3;w=3600'
        assert resp.headers["RateLimit"] == f'"{ROUTE}";r=0;t={retry}'
        assert "WWW-Authenticate" not in resp.headers
    assert json.loads(body) == {
        "detail": f"rate limit {ROUTE} (3/hour burst 3) exceeded",
        "error": "rate_limited",
        "limit": ROUTE,
        "retry_after": retry,
    }


async def test_in_process_limit_refuses_the_fourth_request_and_nothing_reaches_the_upstream(
    launch: Launch,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "limits.yaml"
    config.write_text(limited_config(upstream.url, hs_secret))
    proxy = await launch(config)
    alice = bearer(token, "alice")
    for i in range(3):
        assert await status_of(client, f"{proxy.url}/items/{i}", alice) == 200
    assert len(upstream.requests) == 3
    await assert_rate_limited(client, proxy.url + "/items/over", alice)
    assert len(upstream.requests) == 3
    assert upstream.arrived.qsize() == 3  # not even a request head went out
    # Budgets are per caller; public routes carry no caller and are not limited.
    assert await status_of(client, proxy.url + "/items/bob", bearer(token, "bob")) == 200
    for _ in range(5):
        assert await status_of(client, proxy.url + "/public/p") == 200

    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limited_total", limit=ROUTE) == 1
    assert value(samples, "authproxy_denials_total", error="rate_limited") == 1
    assert value(samples, "authproxy_requests_total", decision="deny", status="429", route=ROUTE) == 1
    assert value(samples, "authproxy_rate_limit_backend_errors_total") == 0


async def test_two_serve_processes_share_one_redis_budget(
    serve: ServeFactory,
    redis_server: RedisServer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "shared.yaml"
    config.write_text(limited_config(upstream.url, hs_secret, backend=redis_server.url))
    first, second = await serve(config), await serve(config)
    alice = bearer(token, "alice")
    assert await status_of(client, first.url + "/a", alice) == 200
    assert await status_of(client, second.url + "/b", alice) == 200
    assert await status_of(client, first.url + "/c", alice) == 200
    await assert_rate_limited(client, second.url + "/d", alice)
    await assert_rate_limited(client, first.url + "/e", alice)
    assert [r.raw_path for r in upstream.requests] == ["/a", "/b", "/c"]
    assert await status_of(client, second.url + "/f", bearer(token, "bob")) == 200

    def refused_line() -> dict[str, object] | None:
        return next((ln for ln in second.log.lines if ln.get("status") == 429), None)

    async def logged() -> bool:
        return refused_line() is not None

    await poll(logged)
    line = refused_line()
    assert line is not None
    assert (line["decision"], line["error"], line["rate_limit"], line["subject"]) == (
        "deny",
        "rate_limited",
        ROUTE,
        "alice",
    )
    assert 0 < float(str(line["retry_after_s"])) <= 1200


async def test_redis_down_fails_closed_with_503_and_a_restart_is_survived(
    launch: Launch,
    redis_server: RedisServer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "closed.yaml"
    config.write_text(limited_config(upstream.url, hs_secret, backend=redis_server.url))
    proxy = await launch(config)
    alice = bearer(token, "alice")
    assert await status_of(client, proxy.url + "/before", alice) == 200

    await redis_server.stop()
    async with client.post(proxy.url + "/down", headers=alice, data=b"y" * 4096) as resp:
        body = await resp.read()
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["Content-Type"] == "application/json"
        assert "RateLimit" not in resp.headers  # the caller is not over a limit: the store failed
    assert json.loads(body) == {
        "detail": "rate limit store unavailable",
        "error": "rate_limit_unavailable",
        "retry_after": 1,
    }
    assert [r.raw_path for r in upstream.requests] == ["/before"]

    await redis_server.start()  # empty again (no persistence): the budget starts full
    for path in ("/after-1", "/after-2", "/after-3"):
        assert await status_of(client, proxy.url + path, alice) == 200
    await assert_rate_limited(client, proxy.url + "/after-4", alice)
    assert len(upstream.requests) == 4

    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limit_backend_errors_total", request="denied") == 1
    assert value(samples, "authproxy_denials_total", error="rate_limit_unavailable") == 1
    assert value(samples, "authproxy_rate_limited_total", limit=ROUTE) == 1


async def test_redis_down_fails_open_when_configured(
    launch: Launch,
    redis_server: RedisServer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "open.yaml"
    config.write_text(limited_config(upstream.url, hs_secret, backend=redis_server.url, on_error="allow"))
    proxy = await launch(config)
    await redis_server.stop()
    alice = bearer(token, "alice")
    for i in range(5):  # more than the budget: nothing counts while the store is down
        assert await status_of(client, f"{proxy.url}/open-{i}", alice) == 200
    assert len(upstream.requests) == 5
    assert upstream.last().header("X-Auth-User-Id") == ["alice"]
    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limit_backend_errors_total", request="allowed") == 5
    assert value(samples, "authproxy_denials_total") == 0


async def test_a_reload_keeps_the_running_budget(
    launch: Launch,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "reload.yaml"
    config.write_text(limited_config(upstream.url, hs_secret))
    proxy = await launch(config)
    alice = bearer(token, "alice")
    for path in ("/r1", "/r2"):
        assert await status_of(client, proxy.url + path, alice) == 200
    store = proxy.service.holder.current.limits.store
    config.write_text(limited_config(upstream.url, hs_secret).replace("default: 100/min", "default: 200/min"))
    assert await proxy.service.reloader.reload("test")
    limits = proxy.service.holder.current.limits
    assert limits.store is store  # same backend: the buckets carry over
    assert limits.config is not None and limits.config.default is not None
    assert limits.config.default.count == 200
    assert await status_of(client, proxy.url + "/r3", alice) == 200
    async with client.get(proxy.url + "/r4", headers=alice) as resp:
        assert resp.status == 429
        assert resp.headers["RateLimit-Policy"] == f'"default";q=200;w=60, "{ROUTE}";q=3;w=3600'
        assert json.loads(await resp.read())["error"] == "rate_limited"
    assert [r.raw_path for r in upstream.requests] == ["/r1", "/r2", "/r3"]
