"""An MCP request takes the same handler path as any request: it is traced with an `authorize` span, logged
and counted with the same fields, and a refused tool call is a denial decision like any other (no second
pipeline before the gate)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION
from tests.rigs.otlp import otlp_receiver
from tests.rigs.serve import ServeFactory
from tests.rigs.upstream import RecordingUpstream

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "purge", "arguments": {}}}


async def test_a_refused_tool_call_is_traced_and_answered_as_a_denial(
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    serve: ServeFactory,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "mcp.yaml"
    config.write_text(config_text(upstream.url, hs_secret) + MCP_SECTION.format(max_body=MAX_BODY))
    async with otlp_receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        proxy = await serve(config, env=env)
        headers = {"Authorization": f"Bearer {token('proxy:use')}", "Accept": "application/json"}
        async with client.post(proxy.url + "/mcp", json=CALL, headers=headers) as answer:
            assert answer.status == 403
            assert answer.headers["Server"] == "authproxy"
            assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="authproxy"')
            document = json.loads(await answer.read())
        await receiver.wait_for(lambda spans: any(s.name == "authorize" for s in spans) and len(spans) >= 2)
        [decision] = [span for span in receiver.spans if span.name == "authorize"]
        [server] = [span for span in receiver.spans if span.kind == 2]
    assert (document["id"], document["error"]["data"]["error"]) == (1, "insufficient_scope")
    # The gate allowed the HTTP request (any valid token reaches the endpoint); the stage refused the call,
    # and the server span carries the refusal's status like any other answer.
    assert decision.attributes["authproxy.decision"] == "allow"
    assert decision.attributes["authproxy.route"] == "GET,POST,DELETE /mcp"
    assert server.attributes["http.response.status_code"] == 403
    assert upstream.requests == []
