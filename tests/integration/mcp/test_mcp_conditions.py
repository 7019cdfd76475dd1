"""A tool rule's `when` through authproxy, driven by the official MCP SDK's client against an SDK server: the
call runs only when its condition is true (the admin scope included); a refusal is the JSON-RPC error of the
other per-tool refusals, with `condition_failed`, and the tool never runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import NotesServer, mcp_session, notes_server
from tests.rigs.proxy import ProxyFactory

SECTION = """\
mcp:
  authorization_servers: [https://idp.example.com]
  endpoints:
    /mcp:
      tools:
        migrate: {scopes: [db:write], when: "tool.arguments.dry_run == true"}
        status: {scopes: [], when: "claims.team == 'ops' && tool.name == 'status'"}
"""


def build_migrations(ran: list[tuple[str, dict[str, str]]]) -> MCPServer:
    server = MCPServer("migrations")

    @server.tool()
    def migrate(dry_run: bool = False) -> str:
        ran.append(("migrate", {"dry_run": str(dry_run)}))
        return "planned" if dry_run else "migrated"

    @server.tool()
    def status() -> str:
        ran.append(("status", {}))
        return "up"

    return server


@pytest.fixture(params=[False, True], ids=["sse", "json"])
async def migrations(request: pytest.FixtureRequest) -> AsyncIterator[NotesServer]:
    async with notes_server(json_response=request.param, build=build_migrations) as server:
        yield server


async def _through(start_proxy: ProxyFactory, server: NotesServer) -> str:
    proxy = await start_proxy(server.url.removesuffix("/mcp"), extra=SECTION)
    return proxy.url + "/mcp"


@pytest.mark.parametrize("scopes", [["db:write"], ["proxy:admin"]])
async def test_a_migration_runs_only_as_a_dry_run(
    start_proxy: ProxyFactory, migrations: NotesServer, token: TokenFactory, scopes: list[str]
) -> None:
    url = await _through(start_proxy, migrations)
    async with mcp_session(url, token(*scopes)) as session:
        result = await session.call_tool("migrate", {"dry_run": True})
        assert result.content[0].text == "planned"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as real:
            await session.call_tool("migrate", {"dry_run": False})
        with pytest.raises(MCPError) as unsaid:
            await session.call_tool("migrate", {})  # no dry_run: an error, so a refusal
    for refused in (real.value, unsaid.value):
        assert str(refused) == "a condition of this rule is not met"
        assert refused.error.code == -32003
        assert refused.error.data == {
            "error": "condition_failed",
            "tool": "migrate",
            "reason": "a condition of this rule is not met",
        }
    assert migrations.ran == [("migrate", {"dry_run": "True"})]


async def test_a_condition_on_the_claims_and_the_tool_name(
    start_proxy: ProxyFactory, migrations: NotesServer, token: TokenFactory
) -> None:
    url = await _through(start_proxy, migrations)
    async with mcp_session(url, token(team="dev")) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("status", {})
    async with mcp_session(url, token(team="ops")) as session:
        assert (await session.call_tool("status", {})).content[0].text == "up"  # type: ignore[union-attr]
    assert refused.value.error.data["error"] == "condition_failed"
    assert migrations.ran == [("status", {})]
