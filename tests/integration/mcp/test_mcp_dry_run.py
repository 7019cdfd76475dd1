"""Dry run on an MCP endpoint: a tool call the per-message rules would refuse goes upstream as the client
sent it (the upstream decides), and the access line and counter say what we would have answered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog

from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION
from tests.rigs.metrics import scrape, value
from tests.rigs.proxy import ProxyFactory
from tests.rigs.tapped import TappedUpstream, serving_tapped

PURGE = b'{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "purge", "arguments": {}}}'


@pytest.fixture
async def tapped() -> AsyncIterator[TappedUpstream]:
    async with serving_tapped(TappedUpstream()) as up:
        yield up


@pytest.mark.parametrize("dry_run", [True, False])
async def test_a_refused_tool_call_goes_as_sent_only_in_dry_run(
    tapped: TappedUpstream,
    start_proxy: ProxyFactory,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    dry_run: bool,
) -> None:
    proxy = await start_proxy(
        tapped.url,
        extra=MCP_SECTION.format(max_body=MAX_BODY),
        policy="  dry_run: true\n" if dry_run else "",
    )
    headers = {"Authorization": f"Bearer {token('proxy:use')}", "Content-Type": "application/json"}
    with structlog.testing.capture_logs() as logs:
        async with client.post(proxy.url + "/mcp", data=PURGE, headers=headers) as answer:
            status = answer.status
            await answer.read()
    [line] = [entry for entry in logs if entry["event"] == "request"]
    if not dry_run:
        assert status == 403
        assert line["error"] == "insufficient_scope"
        tapped.assert_nothing_forwarded()
        return
    assert status == 200  # the upstream's own answer
    assert tapped.only().body == PURGE  # as sent: not re-encoded, nothing pinned into it
    assert line["dry_run"] is True
    assert line["would"] == {"status": "403", "error": "insufficient_scope"}
    samples = await scrape(client, proxy.admin_url)
    route = "GET,POST,DELETE /mcp"
    assert value(samples, "authproxy_dry_run_refusals_total", route=route, error="insufficient_scope") == 1
