"""The agentos preset's content checks through the real proxy, against the tapped upstream shaped like
AgentOS: `GET /config` cut to the caller's read scopes (and refused whole, 502, when it cannot be cut or is
too large), and the workflow WebSocket judged message by message, refused messages never reaching it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from authproxy.cli.explain import explain
from authproxy.proxy.config_roster import MAX_CONFIG_BYTES
from tests.rigs.config import preset_config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import Launch
from tests.rigs.tapped import TappedUpstream, serving_tapped

CONFIG_DOC: dict[str, Any] = {
    "os_id": "os",
    "agents": [{"id": "a1", "name": "one"}, {"id": "a2", "name": "two"}],
    "teams": [{"id": "t1"}],
    "workflows": [{"id": "w1"}, {"id": "w2"}],
    "filesystem": {"namespaces": [{"namespace": "n", "agents": [{"id": "a2"}]}]},
}
RUN_REFUSED = '{"event": "error", "error": "Insufficient permissions to run this workflow"}'


@dataclass
class AgentOSLike(TappedUpstream):
    """The tapped upstream shaped like AgentOS: /config is the body the test sets, /workflows/ws echoes and
    records every frame."""

    config_body: bytes = json.dumps(CONFIG_DOC).encode()
    frames: list[str | bytes] = field(default_factory=list)
    socket_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.path == "/workflows/ws":
            return await self._socket(request)
        if request.path == "/config":
            return web.Response(body=self.config_body, content_type="application/json")
        return None

    def asked(self) -> list[tuple[str, str, list[str]]]:
        """Each request's method, path and Accept-Encoding values."""
        return [(r.method, r.raw_path, r.header("Accept-Encoding")) for r in self.requests]

    async def _socket(self, request: web.BaseRequest) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"event": "connected", "requires_auth": False}))
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(msg.data)
                await ws.send_str(json.dumps({"echo": msg.data}))
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.frames.append(msg.data)
                await ws.send_bytes(msg.data)
        self.socket_ended.set()
        return ws


@pytest.fixture
async def agentos_like() -> AsyncIterator[AgentOSLike]:
    async with serving_tapped(AgentOSLike()) as up:
        yield up


@pytest.fixture
def preset_config(agentos_like: AgentOSLike, tmp_path: Path, hs_secret: bytes) -> Path:
    path = tmp_path / "agentos.yaml"
    path.write_text(preset_config_text(agentos_like.url, hs_secret))
    return path


@pytest.fixture
async def preset_proxy(preset_config: Path, launch: Launch) -> str:
    return (await launch(preset_config)).url


def bearer(token: TokenFactory, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes)}"}


# --- GET /config -------------------------------------------------------------------------------------------


async def test_config_is_cut_to_the_read_scopes(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = bearer(token, "config:read", "agents:a1:read", "teams:read")
    async with client.get(preset_proxy + "/config", headers=headers) as resp:
        assert resp.status == 200
        body = json.loads(await resp.read())
        assert resp.headers["Content-Length"] == str(resp.content_length)
    assert [a["id"] for a in body["agents"]] == ["a1"]
    assert [t["id"] for t in body["teams"]] == ["t1"]
    assert body["workflows"] == []
    assert body["filesystem"] == {"namespaces": []}  # a2's namespace is not described to this caller
    assert agentos_like.asked() == [("GET", "/config", ["identity"])]  # asked uncompressed, to be read


async def test_config_for_admin_streams_untouched(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    agentos_like.config_body = b'{"agents": "not even a list"}'  # proof that nothing reads it
    async with client.get(preset_proxy + "/config", headers=bearer(token, "agent_os:admin")) as resp:
        assert resp.status == 200
        assert await resp.read() == agentos_like.config_body


async def test_config_without_config_read_is_refused_before_the_upstream(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    async with client.get(preset_proxy + "/config", headers=bearer(token, "agents:a1:read")) as resp:
        assert resp.status == 403
        body = await resp.json()
    assert body["error"] == "insufficient_scope"
    assert body["missing_scopes"] == ["config:read"]
    agentos_like.assert_nothing_forwarded()


@pytest.mark.parametrize(
    ("config_body", "detail"),
    [
        (b'{"agents": []}' + b" " * MAX_CONFIG_BYTES, "the response is too large to filter or check"),
        (b'{"agents": [{"name": "secret"}]}', "an item of /config agents has no id and cannot be filtered"),
        (b'["secret"]', "the /config response is not a JSON object and cannot be filtered"),
    ],
    ids=["oversized", "item-without-id", "not-an-object"],
)
async def test_config_that_cannot_be_cut_is_refused_whole(
    config_body: bytes,
    detail: str,
    preset_proxy: str,
    agentos_like: AgentOSLike,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    agentos_like.config_body = config_body
    headers = bearer(token, "config:read", "agents:a1:read")
    async with client.get(preset_proxy + "/config", headers=headers) as resp:
        assert resp.status == 502
        raw = await resp.read()
    assert json.loads(raw) == {
        "detail": detail,
        "error": "upstream_unavailable",
    }  # none of the upstream's bytes
    assert agentos_like.asked() == [("GET", "/config", ["identity"])]


@pytest.fixture
def overriding_config(preset_config: Path) -> Path:
    """The preset plus a user rule for /config, spelled differently from the preset's key."""
    override = '  routes:\n    "GET  /config/": [config:read, teams:read]\n'
    preset_config.write_text(preset_config.read_text() + override)
    return preset_config


async def test_a_user_rule_overriding_config_keeps_the_filter(
    overriding_config: Path, launch: Launch, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await launch(overriding_config)
    headers = bearer(token, "config:read", "teams:read", "agents:a2:read")
    async with client.get(proxy.url + "/config", headers=headers) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [a["id"] for a in body["agents"]] == ["a2"]
    assert body["workflows"] == []


# --- the workflow WebSocket --------------------------------------------------------------------------------


async def test_refused_start_gets_agnos_error_frame_and_never_reaches_the_upstream(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = bearer(token, "workflows:w1:run")
    allowed = {"action": "start-workflow", "workflow_id": "w1", "message": "hi", "user_id": "mallory"}
    refused = json.dumps({"action": "start-workflow", "workflow_id": "w2", "message": "hi"})
    async with client.ws_connect(preset_proxy + "/workflows/ws", headers=headers) as ws:
        assert json.loads(await ws.receive_str())["event"] == "connected"
        with structlog.testing.capture_logs() as logs:
            await ws.send_str(refused)
            assert await ws.receive_str() == RUN_REFUSED
        assert {
            "event": "websocket message refused",
            "action": "start-workflow",
            "subject": "user-1",
        }.items() <= (logs[0].items())
        await ws.send_str(json.dumps(allowed))
        forwarded = json.loads(json.loads(await ws.receive_str())["echo"])
        assert forwarded == {**allowed, "user_id": "user-1"}  # the token's subject, as Agno pins it
        await ws.send_bytes(b"\x00binary passes")
        assert await ws.receive_bytes() == b"\x00binary passes"
        await ws.send_str('{"action": "ping"}')
        assert json.loads(await ws.receive_str()) == {"echo": '{"action":"ping"}'}  # re-encoded
    await agentos_like.socket_ended.wait()
    assert len(agentos_like.frames) == 3  # the refused start never reached the upstream
    assert agentos_like.frames[1:] == [b"\x00binary passes", '{"action":"ping"}']


async def test_family_wide_run_scope_starts_any_workflow(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    start = json.dumps(
        {"action": "continue-workflow", "workflow_id": "w2", "run_id": "r", "user_id": "user-1"}
    )
    async with client.ws_connect(
        preset_proxy + "/workflows/ws", headers=bearer(token, "workflows:run")
    ) as ws:
        await ws.receive_str()
        await ws.send_str(start)
        assert json.loads(await ws.receive_str()) == {"echo": start.replace(", ", ",").replace(": ", ":")}


async def test_unreadable_frame_drops_the_connection_and_is_not_forwarded(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    async with client.ws_connect(
        preset_proxy + "/workflows/ws", headers=bearer(token, "workflows:run")
    ) as ws:
        await ws.receive_str()
        await ws.send_str("{not json")
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSED  # no close frame, as when Agno's handler dies
    await agentos_like.socket_ended.wait()  # the upstream side was closed too
    assert agentos_like.frames == []


async def test_socket_upgrade_without_token_is_refused_before_the_upstream(
    preset_proxy: str, agentos_like: AgentOSLike, client: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(preset_proxy + "/workflows/ws")
    assert refused.value.status == 401
    agentos_like.assert_nothing_forwarded()


# --- explain shows what the proxy will apply ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "scopes", "field", "shown"),
    [
        (
            "/config",
            ("config:read", "agents:a1:read"),
            "config filter",
            "agents: a1; teams: (nothing); workflows: (nothing)",
        ),
        ("/config", ("config:read", "agents:read", "teams:*:read", "workflows:read"), "config filter", None),
        (
            "/workflows/ws",
            ("workflows:w2:run", "workflows:w1:run"),
            "message check",
            "workflows:run limited to: w1 w2",
        ),
        ("/workflows/ws", ("agent_os:admin",), "message check", "workflows:run on every workflow"),
    ],
)
async def test_explain_shows_the_content_check(
    target: str,
    scopes: tuple[str, ...],
    field: str,
    shown: str | None,
    preset_config: Path,
    token: TokenFactory,
) -> None:
    report, allowed = await explain(str(preset_config), "GET", target, token=token(*scopes))
    assert allowed
    assert report.get(field) == shown
