"""The agentos preset's content checks through the real proxy, against a recording upstream shaped like
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
from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from tests.rigs.config import AUDIENCE
from tests.rigs.keys import TokenFactory

PRESET_CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: 2s
  read_timeout: 30s
jwt:
  algorithms: [HS256]
  keys:
    - secret: "{secret}"
  audience: {audience}
policy:
  preset: agentos
"""
CONFIG_DOC: dict[str, Any] = {
    "os_id": "os",
    "agents": [{"id": "a1", "name": "one"}, {"id": "a2", "name": "two"}],
    "teams": [{"id": "t1"}],
    "workflows": [{"id": "w1"}, {"id": "w2"}],
    "filesystem": {"namespaces": [{"namespace": "n", "agents": [{"id": "a2"}]}]},
}
RUN_REFUSED = '{"event": "error", "error": "Insufficient permissions to run this workflow"}'


@dataclass
class AgentOSLike:
    """Serves /config (the body the test sets) and /workflows/ws (echoes and records every frame)."""

    config_body: bytes = json.dumps(CONFIG_DOC).encode()
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Accept-Encoding
    frames: list[str | bytes] = field(default_factory=list)
    socket_ended: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append((request.method, request.raw_path, request.headers.get("Accept-Encoding")))
        if request.path == "/workflows/ws":
            return await self._socket(request)
        if request.path == "/config":
            return web.Response(body=self.config_body, content_type="application/json")
        return web.json_response({"path": request.path})

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
    up = AgentOSLike()
    runner = web.ServerRunner(web.Server(up.handle, access_log=None), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    up.url = f"http://{host}:{port}"
    yield up
    await runner.cleanup()


@pytest.fixture
def preset_config(agentos_like: AgentOSLike, tmp_path: Path, hs_secret: bytes) -> Path:
    path = tmp_path / "agentos.yaml"
    text = PRESET_CONFIG.format(upstream=agentos_like.url, secret=hs_secret.decode(), audience=AUDIENCE)
    path.write_text(text)
    return path


@pytest.fixture
async def preset_proxy(preset_config: Path) -> AsyncIterator[str]:
    path = preset_config
    service = ProxyService(RuntimeHolder(await asyncio.to_thread(load_runtime, path)), grace=5.0)
    await service.start()
    host, port = service.proxy_address
    yield f"http://{host}:{port}"
    await service.stop()


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
    assert agentos_like.requests == [("GET", "/config", "identity")]  # asked uncompressed, to be read


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
    assert agentos_like.requests == []


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
    assert agentos_like.requests == [("GET", "/config", "identity")]


@pytest.fixture
def overriding_config(preset_config: Path) -> Path:
    """The preset plus a user rule for /config, spelled differently from the preset's key."""
    override = '  routes:\n    "GET  /config/": [config:read, teams:read]\n'
    preset_config.write_text(preset_config.read_text() + override)
    return preset_config


async def test_a_user_rule_overriding_config_keeps_the_filter(
    overriding_config: Path, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    service = ProxyService(RuntimeHolder(await asyncio.to_thread(load_runtime, overriding_config)), grace=5.0)
    await service.start()
    try:
        host, port = service.proxy_address
        headers = bearer(token, "config:read", "teams:read", "agents:a2:read")
        async with client.get(f"http://{host}:{port}/config", headers=headers) as resp:
            assert resp.status == 200
            body = await resp.json()
    finally:
        await service.stop()
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
    assert agentos_like.requests == []


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
