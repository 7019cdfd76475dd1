"""The seed rule `"POST /agents/{agent_id}/runs": [agents:run]` without `preset: agentos` admits a token
holding `agents:<that id>:run`, through the proxy and in `authproxy explain` alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from authproxy.cli.explain import explain
from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

SEED_RULE = '    "POST /agents/{agent_id}/runs": [agents:run]\n'


@pytest.mark.parametrize(
    ("path", "scope", "status"),
    [
        ("/agents/web-search-agent/runs", "agents:web-search-agent:run", 200),
        ("/agents/agno-agent/runs", "agents:web-search-agent:run", 403),
        ("/agents/web-search-agent/runs", "agents:*:run", 200),
    ],
)
async def test_per_agent_token_on_the_seed_rule_without_the_preset(
    path: str,
    scope: str,
    status: int,
    tmp_path: Path,
    hs_secret: bytes,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    text = config_text(upstream.url, hs_secret).replace("  routes:\n", "  routes:\n" + SEED_RULE)
    assert "preset" not in text
    config = tmp_path / "seed.yaml"
    config.write_text(text)
    service = ProxyService(RuntimeHolder(await asyncio.to_thread(load_runtime, config)), grace=1.0)
    await service.start()
    try:
        host, port = service.proxy_address
        bearer = token(scope)
        async with client.post(
            f"http://{host}:{port}{path}", headers={"Authorization": f"Bearer {bearer}"}
        ) as r:
            assert r.status == status
            body = await r.read()
    finally:
        await service.stop()
    report, allowed = await explain(str(config), "POST", path, token=bearer)
    assert allowed is (status == 200)
    assert report["route"] == "POST /agents/{agent_id}/runs"
    if status == 200:
        assert [(r.method, r.raw_path) for r in upstream.requests] == [("POST", path)]
    else:
        assert report["body"].encode() == body
        assert upstream.requests == []
