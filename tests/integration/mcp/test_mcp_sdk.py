"""authproxy in front of an MCP server that is not Agno (the official SDK's MCPServer, Streamable HTTP),
driven by the official SDK's client: tools/list filtered per caller, tool calls allowed or refused per
tool and per item, in both answer framings (SSE and JSON), and discovery of how to log in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError

from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import TOOLS, NotesServer, StartProxy, mcp_session, notes_server


@pytest.fixture(params=[False, True], ids=["sse", "json"])
async def notes(request: pytest.FixtureRequest) -> AsyncIterator[NotesServer]:
    async with notes_server(json_response=request.param) as server:
        yield server


async def _through(mcp_proxy: StartProxy, notes: NotesServer) -> str:
    proxy = await mcp_proxy(notes.url.removesuffix("/mcp"))
    return proxy.url + "/mcp"


@pytest.mark.parametrize(
    ("scopes", "listed"),
    [
        (["proxy:admin"], list(TOOLS)),
        (["notes:read", "notes:write"], ["my_notes", "read_note", "whoami", "write_note"]),
        (["notes:n1:read"], ["read_note", "whoami"]),
        (["notes:*:write"], ["whoami", "write_note"]),
        (["proxy:use"], ["whoami"]),
        ([], ["whoami"]),
    ],
)
async def test_tools_list_shows_only_the_tools_the_caller_may_call(
    mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory, scopes: list[str], listed: list[str]
) -> None:
    url = await _through(mcp_proxy, notes)
    async with mcp_session(url, token(*scopes)) as session:
        tools = await session.list_tools()
    assert sorted(tool.name for tool in tools.tools) == listed
    async with mcp_session(notes.url, None) as direct:  # the server itself lists every tool
        assert sorted(tool.name for tool in (await direct.list_tools()).tools) == list(TOOLS)


async def test_per_item_scope_runs_its_item_and_refuses_another(
    mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory
) -> None:
    url = await _through(mcp_proxy, notes)
    async with mcp_session(url, token("notes:n1:read")) as session:
        result = await session.call_tool("read_note", {"note_id": "n1"})
        assert result.content[0].text == "the text of n1"  # type: ignore[union-attr]
        with pytest.raises(MCPError) as refused:
            await session.call_tool("read_note", {"note_id": "n2"})
        with pytest.raises(MCPError) as unnamed:
            await session.call_tool("export", {})
        with pytest.raises(MCPError) as denied:
            await session.call_tool("purge", {})
        assert (await session.call_tool("whoami", {})).content[0].text == "a notes user"  # type: ignore[union-attr]
    assert str(refused.value) == "Insufficient permissions. Required scope(s): notes:n2:read"
    assert refused.value.error.data["missing_scopes"] == ["notes:n2:read"]
    admin_only = "Insufficient permissions. Required scope(s): proxy:admin"
    assert str(unnamed.value) == str(denied.value) == admin_only
    assert notes.ran == [("read_note", {"note_id": "n1"}), ("whoami", {})]


async def test_admin_calls_every_tool(mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory) -> None:
    url = await _through(mcp_proxy, notes)
    async with mcp_session(url, token("proxy:admin")) as session:
        await session.call_tool("purge", {})
        await session.call_tool("export", {})
        await session.call_tool("write_note", {"note_id": "n9", "text": "x"})
    assert [name for name, _ in notes.ran] == ["purge", "export", "write_note"]


async def test_a_call_without_the_argument_its_scope_names_is_refused(
    mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory
) -> None:
    url = await _through(mcp_proxy, notes)
    async with mcp_session(url, token("notes:n1:read")) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("read_note", {})
    assert refused.value.error.data["reason"] == "the call lacks the argument(s) its scopes name: note_id"
    assert notes.ran == []


async def test_a_client_without_a_token_is_challenged_to_discover_the_login(
    mcp_proxy: StartProxy, notes: NotesServer
) -> None:
    url = await _through(mcp_proxy, notes)
    base = url.removesuffix("/mcp")
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}) as answer:
            assert answer.status == 401
            metadata = f"{base}/.well-known/oauth-protected-resource/mcp"
            scopes = 'scope="notes:read notes:write"'  # what the tools need, asked for at first login
            challenge = f'Bearer realm="authproxy", {scopes}, resource_metadata="{metadata}"'
            assert answer.headers["WWW-Authenticate"] == challenge
            assert await answer.json() == {
                "detail": "authentication required: no bearer token",
                "error": "missing_token",
            }
        async with http.get(f"{base}/.well-known/oauth-protected-resource/mcp") as answer:
            assert answer.status == 200
            assert await answer.json() == {
                "resource": url,
                "bearer_methods_supported": ["header"],
                "authorization_servers": ["https://idp.example.com"],
                "scopes_supported": ["notes:read", "notes:write"],
            }
        async with http.get(f"{base}/.well-known/oauth-protected-resource") as answer:
            assert (await answer.json())["resource"] == base
    assert notes.ran == []


async def test_a_pinned_argument_is_the_callers_own_unless_admin(
    mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory
) -> None:
    url = await _through(mcp_proxy, notes)
    async with mcp_session(url, token("notes:read", sub="alice")) as session:
        await session.call_tool("my_notes", {})  # set to the caller's user_id
        await session.call_tool("my_notes", {"user_id": "alice"})
        with pytest.raises(MCPError) as refused:
            await session.call_tool("my_notes", {"user_id": "bob"})
    async with mcp_session(url, token("proxy:admin", sub="root")) as session:
        await session.call_tool("my_notes", {"user_id": "bob"})  # the admin scope is not pinned
    assert refused.value.error.data["reason"] == "arguments.user_id must be the caller's own user_id"
    assert notes.ran == [
        ("my_notes", {"user_id": "alice"}),
        ("my_notes", {"user_id": "alice"}),
        ("my_notes", {"user_id": "bob"}),
    ]
