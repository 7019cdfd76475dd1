"""Upstream faults: refused -> 502, silent -> 504, reset mid-stream -> the client sees an error, never a
clean short body."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.upstream import BLOCK, RecordingUpstream


def closed_port() -> int:
    """A port nothing listens on: bound by us, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_upstream_down_answers_502_json(
    start_proxy: ProxyFactory, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    proxy = await start_proxy(f"http://127.0.0.1:{closed_port()}")
    async with client.get(proxy.url + "/anything", headers=auth) as resp:
        assert resp.status == 502
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
    assert body["error"] == "upstream_unavailable"
    assert body["detail"]


async def test_upstream_down_still_checks_the_token_first(
    start_proxy: ProxyFactory, client: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(f"http://127.0.0.1:{closed_port()}")
    async with client.get(proxy.url + "/anything") as resp:
        assert resp.status == 401


async def test_slow_upstream_answers_504_json(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    proxy = await start_proxy(upstream.url, read_timeout="200ms")
    async with client.get(proxy.url + "/slow", headers=auth) as resp:
        assert resp.status == 504
        body = await resp.json()
    assert body["error"] == "upstream_timeout"
    assert not upstream.slow_release.is_set()


async def test_slow_upstream_within_read_timeout_is_relayed(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    upstream.slow_release.set()
    async with client.get(proxy.url + "/slow", headers=auth) as resp:
        assert resp.status == 200
        assert await resp.text() == "slow done"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_upstream_reset_mid_stream_reaches_client_as_an_error(
    chunked: bool, proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    url = proxy.url + "/reset" + ("?chunked=1" if chunked else "")
    async with client.get(url, headers=auth) as resp:
        assert resp.status == 200  # the headers had gone out before the upstream failed
        assert ("Content-Length" in resp.headers) is not chunked
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                received += chunk
    assert len(received) <= len(BLOCK)  # never the promised length, never a clean end


async def test_proxy_keeps_serving_after_an_upstream_reset(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/reset", headers=auth) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    async with client.get(proxy.url + "/fine", headers=auth) as resp:
        assert resp.status == 200


async def test_upstream_refusing_a_websocket_upgrade_answers_502(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(proxy.url + "/ws-refuse", headers=auth)
    assert refused.value.status == 502


async def test_upstream_down_is_the_same_502_for_a_request_and_a_websocket_upgrade(
    start_proxy: ProxyFactory, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    """Both clients (the lean pool, aiohttp's for upgrades) name a failed connect in one translator."""
    proxy = await start_proxy(f"http://127.0.0.1:{closed_port()}")
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    answers = []
    for headers in (auth, {**auth, **upgrade}):
        async with client.get(proxy.url + "/ws", headers=headers) as resp:
            answers.append((resp.status, await resp.json()))
    down = (502, {"detail": "could not connect to the upstream", "error": "upstream_unavailable"})
    assert answers == [down, down]
