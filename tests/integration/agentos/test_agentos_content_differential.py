"""Differential suite for what Agno decides from the answer or the message, not the request line: the same
tokens against a real AgentOS enforcing its own RBAC and against authproxy (`preset: agentos`) in front of
the same AgentOS with auth off. `GET /config` must answer the same status with the same agents, teams and
workflows; the workflow WebSocket must refuse the same messages with the same error frames.

No message starts a real run: allowed starts name a workflow AgentOS does not have (answered "not found"),
the reconnect/continue messages name a run that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.rigs.agentos import AgentOSServer
from tests.rigs.agentos import ProxyProcess as ProxyProcess
from tests.rigs.agentos_app import AGENT_IDS, TEAM_IDS, WORKFLOW_IDS
from tests.rigs.keys import Mint

pytestmark = pytest.mark.agentos

ADMIN = "agent_os:admin"
FAMILIES = {"agents": set(AGENT_IDS), "teams": set(TEAM_IDS), "workflows": set(WORKFLOW_IDS)}
WORKFLOW = WORKFLOW_IDS[0]
GHOST = "ghost-workflow"  # not served: an allowed start is answered "not found" and runs nothing
REPLY_TIMEOUT = 30.0

CONFIG_TOKENS: dict[str, list[str] | None] = {
    "admin": [ADMIN],
    "config reader": ["config:read"],
    "config + one agent": ["config:read", "agents:agno-agent:read"],
    "config + per-item of each family": [
        "config:read",
        "agents:agno-agent:read",
        "agents:research-agent:read",
        f"teams:{TEAM_IDS[0]}:read",
        f"workflows:{WORKFLOW}:read",
    ],
    "config + family-wide reads": ["config:read", "agents:*:read", "workflows:read"],
    "config + run scopes only": ["config:read", "agents:run", f"workflows:{WORKFLOW}:run"],
    "legacy system:read + one team": ["system:read", f"teams:{TEAM_IDS[0]}:read"],
    "one agent, no config:read": ["agents:agno-agent:read"],
    "family-wide read, no config:read": ["agents:read", "teams:read", "workflows:read"],
    "no scopes": [],
    "no token": None,
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def token_for(mint: Mint, os_id: str, scopes: list[str]) -> str:
    return mint({"sub": "user-content", "aud": os_id, "scopes": scopes})


async def config_answer(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.get(url + "/config", headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("name", list(CONFIG_TOKENS))
async def test_config_lists_the_same_items_as_agentos_for_token(
    name: str,
    agentos_rbac: AgentOSServer,
    authproxy_agentos: ProxyProcess,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    scopes = CONFIG_TOKENS[name]
    headers = (
        {} if scopes is None else {"Authorization": f"Bearer {token_for(mint, agentos_rbac.os_id, scopes)}"}
    )
    agno_status, agno = await config_answer(http, agentos_rbac.url, headers)
    our_status, ours = await config_answer(http, authproxy_agentos.url, headers)
    assert our_status == agno_status
    if agno_status != 200:
        assert "detail" in ours
        return
    for family, served in FAMILIES.items():
        agno_ids = {item["id"] for item in agno[family]}
        assert {item["id"] for item in ours[family]} == agno_ids, family
        assert agno_ids <= served
    assert ours["filesystem"] == agno["filesystem"]
    assert set(ours) == set(agno)  # every other section still there


async def test_config_differential_covers_a_cut_and_a_whole_roster(
    agentos_rbac: AgentOSServer, mint: Mint, http: aiohttp.ClientSession
) -> None:
    """The cases above include a caller Agno shows part of a family and one it shows all of it."""
    scopes = CONFIG_TOKENS["config + one agent"] or []
    one = {"Authorization": f"Bearer {token_for(mint, agentos_rbac.os_id, scopes)}"}
    status, body = await config_answer(http, agentos_rbac.url, one)
    assert status == 200
    assert [a["id"] for a in body["agents"]] == ["agno-agent"]
    admin = {"Authorization": f"Bearer {token_for(mint, agentos_rbac.os_id, [ADMIN])}"}
    status, body = await config_answer(http, agentos_rbac.url, admin)
    assert {a["id"] for a in body["agents"]} == set(AGENT_IDS)


# --- the workflow WebSocket --------------------------------------------------------------------------------

SOCKET_TOKENS: dict[str, list[str]] = {
    "admin": [ADMIN],
    "family-wide run": ["workflows:run"],
    "wildcard run": ["workflows:*:run"],
    "runs the served workflow": [f"workflows:{WORKFLOW}:run"],
    "runs the ghost workflow": [f"workflows:{GHOST}:run"],
    "runs both": [f"workflows:{WORKFLOW}:run", f"workflows:{GHOST}:run"],
    "reads workflows": ["workflows:read", f"workflows:{GHOST}:read"],
    "no scopes": [],
}
SCRIPT: tuple[dict[str, Any], ...] = (
    {"action": "start-workflow", "workflow_id": GHOST, "message": "hi"},
    {"action": "start-workflow", "message": "hi"},  # no workflow id
    {"action": "reconnect", "workflow_id": WORKFLOW, "run_id": "no-such-run", "session_id": "s-1"},
    {"action": "reconnect", "workflow_id": GHOST, "run_id": "no-such-run", "session_id": "s-1"},
    {"action": "continue-workflow", "workflow_id": WORKFLOW, "run_id": "no-such-run"},
    {"action": "continue-workflow", "workflow_id": GHOST, "run_id": "no-such-run"},
    {"action": "ping"},
    {"action": "no-such-action", "workflow_id": WORKFLOW},
)
REFUSALS = {
    "Insufficient permissions to run this workflow",
    "Insufficient permissions to reconnect to this workflow",
    "Insufficient permissions to continue this workflow",
}


async def reply(socket: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(socket.receive(), REPLY_TIMEOUT)


async def run_script(socket: aiohttp.ClientWebSocketResponse) -> list[str]:
    answers = []
    for message in SCRIPT:
        await socket.send_str(json.dumps(message))
        answer = await reply(socket)
        assert answer.type is aiohttp.WSMsgType.TEXT, (message, answer)
        answers.append(answer.data)
    return answers


async def agentos_socket(
    http: aiohttp.ClientSession, server: AgentOSServer, token: str
) -> aiohttp.ClientWebSocketResponse:
    """AgentOS's own way in: connect, then an `authenticate` message carrying the token."""
    socket = await http.ws_connect(server.url + "/workflows/ws")
    assert json.loads((await reply(socket)).data)["requires_auth"] is True
    await socket.send_str(json.dumps({"action": "authenticate", "token": token}))
    while (event := json.loads((await reply(socket)).data)).get(
        "message"
    ) != "JWT authentication successful.":
        assert event["event"] == "authenticated", event
    return socket


async def proxied_socket(
    http: aiohttp.ClientSession, proxy: ProxyProcess, token: str
) -> aiohttp.ClientWebSocketResponse:
    """authproxy's way in: the token on the upgrade request."""
    socket = await http.ws_connect(proxy.url + "/workflows/ws", headers={"Authorization": f"Bearer {token}"})
    assert json.loads((await reply(socket)).data)["event"] == "connected"
    return socket


def refused(answer: str) -> str | None:
    event = json.loads(answer)
    return event["error"] if event.get("event") == "error" and event.get("error") in REFUSALS else None


@pytest.mark.parametrize("name", list(SOCKET_TOKENS))
async def test_workflow_socket_refuses_the_same_messages_as_agentos_for_token(
    name: str,
    agentos_rbac: AgentOSServer,
    authproxy_agentos: ProxyProcess,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    token = token_for(mint, agentos_rbac.os_id, SOCKET_TOKENS[name])
    agno_socket = await agentos_socket(http, agentos_rbac, token)
    try:
        agno = await run_script(agno_socket)
    finally:
        await agno_socket.close()
    our_socket = await proxied_socket(http, authproxy_agentos, token)
    try:
        ours = await run_script(our_socket)
    finally:
        await our_socket.close()
    # Every answer the same frame, byte for byte: refusals (written by authproxy) and the rest (by AgentOS).
    assert dict(zip(map(json.dumps, SCRIPT), ours, strict=True)) == dict(
        zip(map(json.dumps, SCRIPT), agno, strict=True)
    )
    expected_refusals = {
        "admin": 0,
        "family-wide run": 0,
        "wildcard run": 0,
        "runs both": 1,  # the start without a workflow id
        "reads workflows": 6,  # every message that names (or omits) a workflow
        "no scopes": 6,
    }
    if name in expected_refusals:  # the suite exercises refusals and passes, not only one of them
        assert sum(refused(a) is not None for a in agno) == expected_refusals[name]


async def test_unreadable_frame_ends_the_socket_as_agentos_ends_it(
    agentos_rbac: AgentOSServer,
    authproxy_agentos: ProxyProcess,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    token = token_for(mint, agentos_rbac.os_id, [f"workflows:{WORKFLOW}:run"])
    endings = []
    for open_socket in (
        agentos_socket(http, agentos_rbac, token),
        proxied_socket(http, authproxy_agentos, token),
    ):
        socket = await open_socket
        try:
            await socket.send_str("{not json")
            answer = await reply(socket)
            endings.append((answer.type, socket.close_code))
        finally:
            await socket.close()
    assert endings[0] == (aiohttp.WSMsgType.CLOSED, 1006)  # Agno's handler dies: no close frame
    assert endings[1] == endings[0]


@pytest.mark.parametrize(("scopes", "status"), [(None, 401), ([], 101), (["workflows:read"], 101)])
async def test_workflow_socket_upgrade_needs_a_valid_token_only(
    scopes: list[str] | None,
    status: int,
    agentos_rbac: AgentOSServer,
    authproxy_agentos: ProxyProcess,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    headers = (
        {} if scopes is None else {"Authorization": f"Bearer {token_for(mint, agentos_rbac.os_id, scopes)}"}
    )
    try:
        async with http.ws_connect(authproxy_agentos.url + "/workflows/ws", headers=headers) as socket:
            await socket.close()
            got = 101
    except aiohttp.WSServerHandshakeError as refused_upgrade:
        got = refused_upgrade.status
    assert got == status


async def test_workflow_socket_opened_with_a_cookie_is_checked_the_same_way(
    agentos_rbac: AgentOSServer,
    authproxy_agentos_cookie: ProxyProcess,
    mint: Mint,
    http: aiohttp.ClientSession,
) -> None:
    """A browser cannot set headers on a WebSocket: with the cookie source, the cookie opens the socket."""
    token = token_for(mint, agentos_rbac.os_id, SOCKET_TOKENS["runs the served workflow"])
    agno_socket = await agentos_socket(http, agentos_rbac, token)
    try:
        agno = await run_script(agno_socket)
    finally:
        await agno_socket.close()
    cookie = {"Cookie": f"access_token={token}"}
    socket = await http.ws_connect(authproxy_agentos_cookie.url + "/workflows/ws", headers=cookie)
    try:
        assert json.loads((await reply(socket)).data)["event"] == "connected"
        ours = await run_script(socket)
    finally:
        await socket.close()
    assert ours == agno
    assert sum(refused(answer) is not None for answer in ours) == 4  # the ghost and the id-less ones
