"""/metrics on the admin port, scraped and parsed with prometheus_client's parser: requests by decision,
status and route pattern, latency histograms, denials, upstream errors by kind, in-flight requests, open
WebSockets and key source counters."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.jwks import running_jwks_server
from tests.rigs.keys import TokenFactory, public_jwk
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.raw import raw_exchange
from tests.rigs.upstream import RecordingUpstream

REQUESTS = "authproxy_requests_total"


async def test_requests_are_counted_by_decision_status_and_route(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    assert await status_of(client, proxy.url + "/items/1", auth) == 200
    assert await status_of(client, proxy.url + "/items/2", auth) == 200
    assert await status_of(client, proxy.url + "/private/x", auth) == 403
    assert await status_of(client, proxy.url + "/items/3") == 401
    assert await status_of(client, proxy.url + "/public/p") == 200
    answer = await raw_exchange(
        proxy.url, b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 ")

    samples = await scrape(client, proxy.admin_url)
    assert value(samples, REQUESTS, decision="allow", status="200", route="* /**") == 2
    assert value(samples, REQUESTS, decision="deny", status="403", route="GET /private/**") == 1
    assert value(samples, REQUESTS, decision="deny", status="401", route="* /**") == 1
    assert value(samples, REQUESTS, decision="allow", status="200", route="/public/**") == 1
    assert value(samples, REQUESTS, decision="deny", status="400", route="(unmatched)") == 1
    assert value(samples, REQUESTS) == 6
    assert value(samples, "authproxy_denials_total", error="insufficient_scope") == 1
    assert value(samples, "authproxy_denials_total", error="missing_token") == 1
    assert value(samples, "authproxy_denials_total", error="bad_request") == 1
    assert value(samples, "authproxy_request_duration_seconds_count") == 6
    assert value(samples, "authproxy_request_duration_seconds_bucket", decision="allow", le="+Inf") == 3
    assert value(samples, "authproxy_decision_duration_seconds_count", decision="deny") == 3
    assert value(samples, "authproxy_decision_duration_seconds_sum") > 0
    assert value(samples, "authproxy_policy_rules") == 3
    assert value(samples, "authproxy_config_reloads_total") == 0
    assert value(samples, "authproxy_config_last_reload_successful") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_labels_never_carry_raw_paths_or_subjects(
    proxy: RunningProxy, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    bearer = token("proxy:use", sub="subject-0815", jti="jti-4711")
    assert (
        await status_of(client, proxy.url + "/items/item-9931?q=z", {"Authorization": f"Bearer {bearer}"})
        == 200
    )
    assert (
        await status_of(client, proxy.url + "/private/item-9932", {"Authorization": f"Bearer {bearer}"})
        == 403
    )
    async with client.get(proxy.admin_url + "/metrics") as resp:
        text = await resp.text()
    for secret in ("subject-0815", "jti-4711", "item-9931", "item-9932", bearer):
        assert secret not in text


async def test_upstream_errors_are_counted_by_kind(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    proxy = await start_proxy(upstream.url, read_timeout="0.2s")
    assert await status_of(client, proxy.url + "/slow", auth) == 504
    with contextlib.suppress(aiohttp.ClientPayloadError):  # the body breaks off: the proxy aborts too
        await status_of(client, proxy.url + "/reset", auth)
    refused = await start_proxy("http://127.0.0.1:1")
    assert await status_of(client, refused.url + "/any", auth) == 502

    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_upstream_errors_total", kind="timeout") == 1
    assert value(samples, "authproxy_upstream_errors_total", kind="interrupted") == 1
    assert value(samples, "authproxy_upstream_errors_total", kind="unavailable") == 0
    assert value(samples, REQUESTS, decision="allow", status="504") == 1
    samples = await scrape(client, refused.admin_url)
    assert value(samples, "authproxy_upstream_errors_total", kind="unavailable") == 1
    assert value(samples, REQUESTS, decision="allow", status="502") == 1


async def test_in_flight_requests_and_open_websockets_are_gauges(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async def gauge(name: str) -> float:
        return value(await scrape(client, proxy.admin_url), name)

    async def no_request_in_flight() -> bool:
        return await gauge("authproxy_requests_in_flight") == 0

    async def no_websocket_open() -> bool:
        return await gauge("authproxy_websockets_open") == 0

    assert await no_request_in_flight()
    pending = asyncio.create_task(status_of(client, proxy.url + "/slow", auth))
    await upstream.slow_waiting.wait()
    assert await gauge("authproxy_requests_in_flight") == 1
    upstream.slow_release.set()
    assert await pending == 200
    await poll(no_request_in_flight)

    async with client.ws_connect(proxy.url + "/ws", headers=auth) as ws:
        await ws.send_str("hello")
        assert (await ws.receive_str()).startswith("echo:hello")
        assert await gauge("authproxy_websockets_open") == 1
        assert await gauge("authproxy_requests_in_flight") == 1  # the upgrade request is still running
    await poll(no_websocket_open)
    await poll(no_request_in_flight)


async def test_key_refreshes_and_failures_are_read_from_the_key_source(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    async with running_jwks_server() as idp:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        idp.mode, idp.status = "error", 503  # down at first
        keys = f"    - jwks_url: {idp.jwks_url}\n      allow_insecure_http: true"
        proxy = await start_proxy(upstream.url, algorithms="RS256", keys=keys)
        source = {"source": idp.jwks_url}

        async def metric(name: str) -> float:
            return value(await scrape(client, proxy.admin_url), name, **source)

        async def failed() -> bool:
            return await metric("authproxy_key_refresh_failures_total") > 0

        async def refreshed() -> bool:
            return await metric("authproxy_key_refreshes_total") > 0

        await poll(failed)
        assert await metric("authproxy_key_source_ready") == 0
        assert await metric("authproxy_key_refreshes_total") == 0
        idp.mode = "ok"  # the source retries with back-off
        await poll(refreshed, every=0.1)
        assert await metric("authproxy_key_source_ready") == 1
        assert await metric("authproxy_key_source_keys") == 1
