"""The official SDK 2.3 client through authproxy in both protocol eras: `auto` (2026-07-28, reached by the
`server/discover` probe, routing headers on every POST) and `legacy` (the initialize handshake, no routing
headers), against the SDK's own server, in both answer framings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION, NotesServer, StartProxy, notes_server
from tests.rigs.proxy import ProxyFactory

ERAS = {"auto": "2026-07-28", "legacy": "2025-11-25"}


@pytest.fixture(params=[False, True], ids=["sse", "json"])
async def notes(request: pytest.FixtureRequest) -> AsyncIterator[NotesServer]:
    async with notes_server(json_response=request.param) as server:
        yield server


@asynccontextmanager
async def client(
    url: str, token: str | None, mode: Literal["auto", "legacy"], sent: list[str]
) -> AsyncIterator[Client]:
    """An SDK client in `mode`, noting each POST's `Mcp-Method` ("" when it sends none) in `sent`."""

    async def note(request: httpx2.Request) -> None:
        sent.append(request.headers.get("Mcp-Method", ""))

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, event_hooks={"request": [note]}) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as session,
    ):
        yield session


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_both_eras_are_served_their_tools_and_a_cut_list_is_private(
    mcp_proxy: StartProxy, notes: NotesServer, token: TokenFactory, mode: Literal["auto", "legacy"]
) -> None:
    url = (await mcp_proxy(notes.url.removesuffix("/mcp"))).url + "/mcp"
    sent: list[str] = []
    async with client(url, token("notes:n1:read"), mode, sent) as session:
        assert session.protocol_version == ERAS[mode]
        listed = await session.list_tools()
        assert sorted(tool.name for tool in listed.tools) == ["read_note", "whoami"]
        result = await session.call_tool("read_note", {"note_id": "n1"})
        assert result.content[0].text == "the text of n1"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await session.call_tool("purge", {})
    if mode == "auto":
        # the modern era: discover first, routing headers the proxy held to each body, a private list
        assert sent[:3] == ["server/discover", "tools/list", "tools/call"]
        assert listed.cache_scope == "private"
    else:
        assert set(sent) == {""}
    assert [name for name, _ in notes.ran] == ["read_note"]


async def test_the_server_itself_calls_its_list_public(notes: NotesServer) -> None:
    """What the proxy changes: the server's own answer says every caller may share it."""
    async with client(notes.url, None, "auto", []) as session:
        assert (await session.list_tools()).cache_scope == "public"


async def test_discovery_is_refused_to_a_token_for_another_resource(
    start_proxy: ProxyFactory, notes: NotesServer, token: TokenFactory
) -> None:
    extra = MCP_SECTION.format(max_body=MAX_BODY) + "  resource: https://notes.example.com\n"
    url = (await start_proxy(notes.url.removesuffix("/mcp"), extra=extra)).url + "/mcp"
    sent: list[str] = []
    with pytest.raises(ExceptionGroup) as refused:
        async with client(url, token(aud="https://other.example/mcp"), "auto", sent):
            pass
    assert refused.group_contains(MCPError)  # the SDK without an OAuth provider surfaces the 401 so
    assert sent[:1] == ["server/discover"]
    assert notes.ran == []
