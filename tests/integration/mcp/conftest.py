"""Fixtures of the MCP tests: authproxy with an `mcp` section in front of a given upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcprig import MCP_SECTION, StartProxy
from proxyrig import RunningProxy, config_text

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService

MAX_BODY = 64 * 1024


@pytest.fixture
async def mcp_proxy(tmp_path: Path, hs_secret: bytes) -> AsyncIterator[StartProxy]:
    """authproxy with the rig's policy plus MCP_SECTION, in front of `upstream_url` (a server root)."""
    started: list[ProxyService] = []

    async def start(upstream_url: str) -> RunningProxy:
        path = tmp_path / f"mcp-{len(started)}.yaml"
        path.write_text(config_text(upstream_url, hs_secret) + MCP_SECTION.format(max_body=MAX_BODY))
        service = ProxyService(RuntimeHolder(load_runtime(path)), grace=2.0)
        started.append(service)
        await service.start()
        host, port = service.proxy_address
        admin_host, admin_port = service.admin_address
        return RunningProxy(service, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", path)

    yield start
    for service in reversed(started):
        await service.stop()
