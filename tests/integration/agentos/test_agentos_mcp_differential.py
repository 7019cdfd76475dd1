"""MCP differential: the official MCP client calls AgentOS's MCP server (`AgentOS(mcp=True)`) twice with
the same tokens, once straight at an AgentOS enforcing its own RBAC and once through authproxy
(`preset: agentos`) in front of an AgentOS with no auth; the same tool calls run or are refused.
authproxy's tools/list shows only the tools the caller may call (Agno lists every tool): asserted here as
that listed difference.

A call that runs a model fails at once on the closed loopback port the harness points OpenAI at.
"""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from tests.rigs.agentos import AgentOSServer, ProxyProcess
from tests.rigs.keys import Mint
from tests.rigs.mcp_server import mcp_session

pytestmark = [pytest.mark.agentos, pytest.mark.timeout(300)]  # the first test waits for AgentOS to start

AGNO_TOOLS = (
    "cancel_run",
    "continue_run",
    "get_agentos_config",
    "get_session_runs",
    "get_sessions",
    "run_agent",
    "run_team",
    "run_workflow",
)
TOKENS: dict[str, list[str]] = {
    "admin": ["agent_os:admin"],
    "web-search runner": ["agents:web-search-agent:run"],
    "agents wildcard runner": ["agents:*:run"],
    "team runner": ["teams:research-team:run"],
    "reader": ["config:read", "sessions:read", "agents:read", "teams:read", "workflows:read"],
    "legacy config reader": ["system:read"],
    "config reader": ["config:read", "agents:agno-agent:read"],
    "config reader of one team": ["config:read", "teams:research-team:read", "workflows:*:read"],
    "config reader alone": ["config:read"],
    "no scopes": [],
}
WEB, TEAM = {"agent_id": "web-search-agent"}, {"team_id": "research-team"}
RUN = {"run_id": "r-1", "session_id": "s-1"}
CALLS: tuple[tuple[str, dict[str, str]], ...] = (
    ("get_agentos_config", {}),
    ("get_sessions", {}),
    ("get_session_runs", {"session_id": "no-such-session"}),
    ("run_agent", {**WEB, "message": "hi"}),
    ("run_agent", {"agent_id": "agno-agent", "message": "hi"}),
    ("run_team", {**TEAM, "message": "hi"}),
    ("run_workflow", {"workflow_id": "research-workflow", "message": "hi"}),
    ("continue_run", {**RUN, **WEB}),
    ("continue_run", {**RUN, **TEAM}),
    ("cancel_run", {**RUN, **WEB}),
    ("cancel_run", {**RUN, **TEAM}),
)
REFUSED = "Insufficient permissions"
CLIENT = {"name": "differential", "version": "1"}
ROSTER = ("agents", "teams", "workflows")


def bearer(mint: Mint, scopes: list[str], audience: str) -> str:
    return mint({"sub": "user-mcp", "aud": audience, "scopes": scopes, "exp": int(time.time()) + 600})


def roster(result: CallToolResult) -> tuple[object, object]:
    """The ids get_agentos_config shows, per family, in its structured and in its text form."""
    text = json.loads(getattr(result.content[0], "text", "{}"))
    structured = result.structured_content or {}
    return tuple(  # type: ignore[return-value]
        {family: [item["id"] for item in form.get(family, [])] for family in ROSTER}
        for form in (structured, text)
    )


async def outcomes(url: str, token: str) -> tuple[list[str], list[bool], object]:
    """The tools listed, for each call whether it ran, and the roster get_agentos_config answered. A refusal
    says "Insufficient permissions": AgentOS puts it in a tool error result, authproxy in the JSON-RPC error
    of its 403. (A model's run fails on the closed OpenAI port, sometimes as a stream that ends without an
    answer: it ran.)"""
    ran = []
    shown: object = None
    async with mcp_session(url, token) as session:
        listed = sorted(tool.name for tool in (await session.list_tools()).tools)
        for name, arguments in CALLS:
            try:
                result = await session.call_tool(name, arguments)
            except MCPError as error:
                said = str(error)
            else:
                said = getattr(result.content[0], "text", "") if result.is_error and result.content else ""
                if name == "get_agentos_config" and not result.is_error:
                    shown = roster(result)
            ran.append(REFUSED not in said)
    return listed, ran, shown


@pytest.mark.parametrize("name", list(TOKENS))
async def test_the_same_tool_calls_run_and_the_list_shows_just_those(
    name: str, agentos_rbac: AgentOSServer, authproxy_agentos: ProxyProcess, mint: Mint
) -> None:
    token = bearer(mint, TOKENS[name], agentos_rbac.os_id)
    agno_listed, agno_ran, agno_roster = await outcomes(agentos_rbac.url + "/mcp", token)
    listed, ran, shown = await outcomes(authproxy_agentos.url + "/mcp", token)
    assert ran == agno_ran, [c[0] for c, a, b in zip(CALLS, agno_ran, ran, strict=True) if a != b]
    # get_agentos_config shows the roster Agno shows the same caller, in both of its forms
    assert shown == agno_roster
    assert (shown is not None) == ran[0]  # CALLS[0]: whenever it ran, its roster was compared
    assert agno_listed == list(AGNO_TOOLS)  # Agno lists every tool, whatever the token
    assert listed == sorted({tool for (tool, _), did in zip(CALLS, ran, strict=True) if did})


async def test_without_a_token_both_refuse_the_session(
    agentos_rbac: AgentOSServer, authproxy_agentos: ProxyProcess
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    statuses = []
    async with aiohttp.ClientSession() as http:
        for base in (agentos_rbac.url, authproxy_agentos.url):
            async with http.post(base + "/mcp", data=json.dumps(initialize), headers=headers) as answer:
                statuses.append(answer.status)
                challenge = answer.headers.get("WWW-Authenticate", "")
    assert statuses == [401, 401]
    metadata = f"{authproxy_agentos.url}/.well-known/oauth-protected-resource/mcp"
    # the scopes the preset's tools need, for the client's first authorization
    assert challenge.startswith('Bearer realm="authproxy", scope="')
    assert challenge.endswith(f', resource_metadata="{metadata}"')
