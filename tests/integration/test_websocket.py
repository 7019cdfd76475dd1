"""WebSocket relay: authorized on the upgrade request, then frames both ways, close code and reason kept."""

from __future__ import annotations

import aiohttp
import pytest

from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import RunningProxy
from tests.rigs.upstream import RecordingUpstream


async def test_websocket_text_and_binary_are_relayed_both_ways(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    async with client.ws_connect(proxy.url + "/ws/room?id=7", headers=headers) as ws:
        await ws.send_str("hello")
        # The upstream answers with the identity the proxy set on the upgrade request.
        assert await ws.receive_str() == "echo:hello|alice"
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes() == b"\x02\x01\x00"
    seen = upstream.last()
    assert seen.raw_path == "/ws/room?id=7"
    assert seen.header("Upgrade") == ["websocket"]


async def test_websocket_subprotocol_is_negotiated_with_the_upstream(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.ws_connect(proxy.url + "/ws", headers=auth, protocols=("chat.v1", "other")) as ws:
        assert ws.protocol == "chat.v1"


async def test_websocket_upstream_close_code_and_reason_reach_the_client(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.ws_connect(proxy.url + "/ws", headers=auth) as ws:
        await ws.send_str("close:4001:done here")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 4001
        assert msg.extra == "done here"
    assert ws.close_code == 4001


async def test_websocket_client_close_code_reaches_the_upstream(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    ws = await client.ws_connect(proxy.url + "/ws", headers=auth)
    await ws.close(code=4002, message=b"client leaves")
    assert ws.close_code == 4002
    assert await upstream.ws_closes.get() == (4002, "client leaves")


async def test_websocket_ping_is_answered(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.ws_connect(proxy.url + "/ws", headers=auth, autoping=False) as ws:
        await ws.ping(b"are you there")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.PONG
        assert msg.data == b"are you there"


async def test_websocket_upgrade_without_token_is_refused(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(proxy.url + "/ws")
    assert refused.value.status == 401
    assert upstream.requests == []


async def test_websocket_upgrade_with_short_scopes_is_refused(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {token('proxy:use')}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(proxy.url + "/private/ws", headers=headers)
    assert refused.value.status == 403
    assert upstream.requests == []


async def test_malformed_websocket_handshake_is_refused_before_the_upstream(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    headers = {**auth, "Upgrade": "websocket", "Connection": "Upgrade"}  # no key, no version
    async with client.get(proxy.url + "/ws", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "bad_request"
    assert upstream.requests == []


async def test_websocket_identity_header_spoof_is_refused(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {token('proxy:use', sub='bob')}", "X_Auth_User_Id": "admin"}
    async with client.ws_connect(proxy.url + "/ws", headers=headers) as ws:
        await ws.send_str("who")
        assert await ws.receive_str() == "echo:who|bob"
    assert all(v != "admin" for _, v in upstream.last().headers)
