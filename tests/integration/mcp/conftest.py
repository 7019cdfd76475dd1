"""Fixtures of the MCP tests: authproxy with an `mcp` section in front of a given upstream."""

from __future__ import annotations

import pytest

from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION, StartProxy
from tests.rigs.proxy import ProxyFactory, RunningProxy


@pytest.fixture
def mcp_proxy(start_proxy: ProxyFactory) -> StartProxy:
    """authproxy with the rig's policy plus MCP_SECTION, in front of `upstream_url` (a server root)."""

    async def start(upstream_url: str) -> RunningProxy:
        return await start_proxy(upstream_url, extra=MCP_SECTION.format(max_body=MAX_BODY))

    return start
