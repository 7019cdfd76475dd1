"""`tools/list` answers the way a client reads them, not the way a filter happens to split them: an SSE answer
with CR line ends, a CRLF blank line after LF lines, or a leading byte-order mark is still filtered, and what
the client gets is the proxy's own re-encoding (LF lines, `data:` fields, nothing left to read twice). A
non-200 answer holding a tool list never passes; the upstream is asked without `Range`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mcp.shared.exceptions import MCPError

from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import StartProxy, mcp_session
from tests.rigs.tapped import TappedUpstream, serving_tapped

LISTED = ["whoami"]  # what a token with proxy:use alone may see of UPSTREAM_TOOLS under MCP_SECTION
UPSTREAM_TOOLS = [
    {"name": "whoami", "inputSchema": {"type": "object"}},
    {"name": "purge", "inputSchema": {"type": "object"}},
]

Answer = tuple[int, str, list[bytes]]  # status, Content-Type, the body's writes
Script = Callable[[int], Answer]  # the tools/list request's id -> the answer to it


def listing(ident: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": ident, "result": {"tools": UPSTREAM_TOOLS}}).encode()


@dataclass
class ScriptedMcp(TappedUpstream):
    """The tapped upstream as an MCP server answering `initialize` as a server would, and `tools/list` with
    `script`'s exact bytes, one write each."""

    script: Script = field(default=lambda ident: (200, "application/json", [listing(ident)]))

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        message: dict[str, Any] = json.loads(await request.read())
        if "id" not in message:  # a notification
            return web.Response(status=202)
        if message["method"] != "tools/list":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "1"},
            }
            return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})
        status, content_type, writes = self.script(message["id"])
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        await response.prepare(request)
        for data in writes:
            await response.write(data)
        await response.write_eof()
        return response


@pytest.fixture
async def scripted_mcp() -> AsyncIterator[ScriptedMcp]:
    async with serving_tapped(ScriptedMcp()) as up:
        yield up


async def list_tools(url: str, token: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    request = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
    sent = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        **(headers or {}),
    }
    async with aiohttp.ClientSession() as http, http.post(url + "/mcp", json=request, headers=sent) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), await answer.read()


def canonical_events(body: bytes) -> list[dict[str, str]]:
    """The events of an answer in the proxy's own form: LF lines only, one `name: value` per field."""
    assert b"\r" not in body and not body.startswith(b"\xef\xbb\xbf"), body
    assert body.endswith(b"\n\n"), body
    events = []
    for block in body.decode().removesuffix("\n\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, sep, value = line.partition(": ")
            assert sep or line.startswith(":"), line
            fields[name] = fields[name] + "\n" + value if name in fields else value
        events.append(fields)
    return events


NOTE = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}'


def sse(*writes: bytes) -> Script:
    return lambda ident: (200, "text/event-stream", [w.replace(b"{LISTING}", listing(ident)) for w in writes])


FRAMINGS = {
    # A filter that looks for LF LF reads these two events as one whose data is not JSON.
    "cr-line-ends": sse(b"event: message\rdata: {LISTING}\r\r", b"data: " + NOTE + b"\n\n"),
    "crlf-blank-line-after-lf-lines": sse(
        b"event: message\ndata: {LISTING}\n\r\n", b"data: " + NOTE + b"\n\n"
    ),
    "leading-byte-order-mark": sse(b"\xef\xbb\xbfdata: {LISTING}\n\n"),
    "crlf-split-between-writes": sse(b"data: {LISTING}\r", b"\n\r", b"\n"),
    "no-space-and-a-comment": sse(b": hello\r\nid: 4\r\ndata:{LISTING}\r\n\r\n"),
}


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
async def test_a_tool_list_in_any_sse_framing_is_filtered_and_reencoded(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory, framing: Script
) -> None:
    scripted_mcp.script = framing
    proxy = await mcp_proxy(scripted_mcp.url)
    status, content_type, body = await list_tools(proxy.url, token("proxy:use"))
    assert (status, content_type) == (200, "text/event-stream")
    assert b"purge" not in body
    answers = [json.loads(e["data"]) for e in canonical_events(body) if "data" in e]
    assert [tool["name"] for tool in answers[0]["result"]["tools"]] == LISTED
    assert answers[0]["id"] == 5


async def test_the_sdk_client_sees_only_its_tools_in_a_cr_framed_stream(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    scripted_mcp.script = FRAMINGS["cr-line-ends"]
    proxy = await mcp_proxy(scripted_mcp.url)
    async with mcp_session(proxy.url + "/mcp", token("proxy:use")) as session:
        tools = await session.list_tools()
    assert [tool.name for tool in tools.tools] == LISTED


async def test_keep_alive_comments_and_event_fields_pass_in_canonical_form(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    scripted_mcp.script = sse(
        b":ping\r\n\r\nid: e-1\rretry: 500\rdata\r\r", b"event: message\ndata: {LISTING}\n\n"
    )
    proxy = await mcp_proxy(scripted_mcp.url)
    _, _, body = await list_tools(proxy.url, token("proxy:use"))
    assert body.startswith(b":ping\n\nid: e-1\nretry: 500\ndata: \n\nevent: message\ndata: {")


@pytest.mark.parametrize("status", [203, 206, 400])
async def test_a_non_200_json_answer_holding_a_tool_list_is_a_502(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory, status: int
) -> None:
    scripted_mcp.script = lambda ident: (status, "application/json", [listing(ident)])
    proxy = await mcp_proxy(scripted_mcp.url)
    answer = await list_tools(proxy.url, token("proxy:use"))
    assert answer[:2] == (502, "application/json")
    assert json.loads(answer[2])["error"] == "upstream_unavailable"


@pytest.mark.parametrize(
    "media_type", ["application/json-rpc", "text/event-streamx", "application/json; charset", "text/plain"]
)
async def test_a_tool_list_of_another_media_type_is_a_502(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory, media_type: str
) -> None:
    # The official SDK reads a type that starts with application/json (or text/event-stream) as that type.
    scripted_mcp.script = lambda ident: (200, media_type, [listing(ident)])
    proxy = await mcp_proxy(scripted_mcp.url)
    answer = await list_tools(proxy.url, token("proxy:use"))
    assert answer[:2] == (502, "application/json")
    assert b"purge" not in answer[2]


async def test_the_sdk_client_never_reads_a_203_tool_list(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    # The SDK reads any 2xx JSON answer as the result: a 203 passed as it came would list every tool.
    scripted_mcp.script = lambda ident: (203, "application/json", [listing(ident)])
    proxy = await mcp_proxy(scripted_mcp.url)
    async with mcp_session(proxy.url + "/mcp", token("proxy:use")) as session:
        with pytest.raises(MCPError) as refused:  # the 502, as the SDK reports it
            await session.list_tools()
    assert "purge" not in str(refused.value)


async def test_a_non_200_sse_answer_holding_a_tool_list_is_cut_off(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    scripted_mcp.script = lambda ident: (201, "text/event-stream", [b"data: " + listing(ident) + b"\n\n"])
    proxy = await mcp_proxy(scripted_mcp.url)
    request = {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
    headers = {"Authorization": f"Bearer {token('proxy:use')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/mcp", json=request, headers=headers) as answer,
    ):
        assert answer.status == 201  # the head went out before the first event was read
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()


async def test_a_non_200_answer_without_a_tool_list_passes_as_it_came(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    error = b'{"jsonrpc": "2.0", "id": 5, "error": {"code": -32602, "message": "bad cursor"}}'
    scripted_mcp.script = lambda ident: (400, "application/json", [error])
    proxy = await mcp_proxy(scripted_mcp.url)
    assert await list_tools(proxy.url, token("proxy:use")) == (400, "application/json", error)


async def test_a_listing_request_goes_upstream_without_range(
    mcp_proxy: StartProxy, scripted_mcp: ScriptedMcp, token: TokenFactory
) -> None:
    proxy = await mcp_proxy(scripted_mcp.url)
    ranged = {"Range": "bytes=0-40", "If-Range": '"v1"', "Accept-Encoding": "gzip"}
    status, _, body = await list_tools(proxy.url, token("proxy:use"), ranged)
    assert status == 200
    assert [tool["name"] for tool in json.loads(body)["result"]["tools"]] == LISTED
    sent = scripted_mcp.requests[-1]
    assert sent.header("Range") == sent.header("If-Range") == []
    assert sent.header("Accept-Encoding") == ["identity"]
