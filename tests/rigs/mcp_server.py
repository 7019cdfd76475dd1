"""A small MCP server built with the official SDK (not Agno), served over Streamable HTTP on 127.0.0.1, and an
official-SDK client session; both for driving authproxy's MCP endpoint authorization end to end."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import CacheHint
from mcp.server.mcpserver import MCPServer

from tests.rigs.proxy import RunningProxy

StartProxy = Callable[[str], Awaitable[RunningProxy]]  # authproxy with MCP_SECTION, before an upstream URL
MAX_BODY = 64 * 1024  # the bound on one MCP POST in MCP_SECTION as the tests use it
TOOLS = ("export", "my_notes", "purge", "read_note", "whoami", "write_note")

# The tool policy the tests put in front of the notes server: per-item scopes bound from the arguments,
# a tool any valid token may call, one denied outright, and one ("export") the table does not name.
MCP_SECTION = """\
mcp:
  authorization_servers: [https://idp.example.com]
  max_body: {max_body}
  endpoints:
    /mcp:
      tools:
        read_note: ["notes:{{note_id}}:read"]
        write_note: ["notes:{{note_id}}:write"]
        whoami: []
        purge: deny
        my_notes: {{scopes: [notes:read], pin: {{user_id: user_id}}}}
"""


@dataclass
class NotesServer:
    url: str  # the MCP endpoint, http://127.0.0.1:PORT/mcp
    ran: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # tool calls that reached a tool


def build_notes(ran: list[tuple[str, dict[str, str]]]) -> MCPServer:
    # Its tool list is the same for everyone, so it says so (2026-07-28 caching): a list the proxy cuts per
    # caller must not keep that "public".
    server = MCPServer("notes", cache_hints={"tools/list": CacheHint(ttl_ms=60_000, scope="public")})

    @server.tool()
    def read_note(note_id: str) -> str:
        ran.append(("read_note", {"note_id": note_id}))
        return f"the text of {note_id}"

    @server.tool()
    def write_note(note_id: str, text: str) -> str:
        ran.append(("write_note", {"note_id": note_id, "text": text}))
        return f"wrote {note_id}"

    @server.tool()
    def whoami() -> str:
        ran.append(("whoami", {}))
        return "a notes user"

    @server.tool()
    def my_notes(user_id: str | None = None) -> str:
        ran.append(("my_notes", {"user_id": user_id or ""}))
        return f"the notes of {user_id}"

    @server.tool()
    def purge() -> str:
        ran.append(("purge", {}))
        return "all notes gone"

    @server.tool()
    def export() -> str:
        ran.append(("export", {}))
        return "every note"

    return server


@asynccontextmanager
async def notes_server(
    *, json_response: bool, build: Callable[[list[tuple[str, dict[str, str]]]], MCPServer] | None = None
) -> AsyncIterator[NotesServer]:
    """The notes server (or what `build` makes, recording into the list it is given) under uvicorn in this
    event loop, on an OS-chosen port; stopped on exit."""
    ran: list[tuple[str, dict[str, str]]] = []
    app = (build or build_notes)(ran).streamable_http_app(json_response=json_response)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # polled: uvicorn sets it once the lifespan has started
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield NotesServer(f"http://127.0.0.1:{port}/mcp", ran)
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def mcp_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    """An initialized official-SDK client session to `url`, sending `token` as a Bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        streamable_http_client(url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session
