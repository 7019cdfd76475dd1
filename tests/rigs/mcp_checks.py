"""MCP message checks run in process, as `explain` and the proxy run them: a policy loaded from a config
text, `tools/call` documents, and what `check_post` re-encodes for the upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from authproxy.policy.mcp.endpoints import McpPolicy
from authproxy.proxy.mcp.messages import Caller, check_post
from authproxy.runtime import load_runtime


def load_mcp_policy(folder: Path, config: str) -> McpPolicy:
    """The MCP policy of `config` (a whole config file's text), written into `folder` and loaded."""
    path = folder / "mcp.yaml"
    path.write_text(config)
    mcp = load_runtime(path).mcp
    assert mcp is not None
    return mcp


def tool_call(ident: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def checked_post(policy: McpPolicy, document: Any, caller: Caller) -> Any:
    """The POST's messages as the upstream would receive them (RequestRejected when refused)."""
    data = json.dumps(document).encode()
    return json.loads(check_post(policy, policy.sites[0], caller, data, "application/json").encode())
