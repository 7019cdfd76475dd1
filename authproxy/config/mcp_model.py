"""The `mcp` section as frozen values: which paths speak MCP, and what each tool requires.

Nothing here does I/O; config/mcp.py builds these from YAML (and the agentos preset's fragment), and
policy/mcp/ compiles them into the per-message check that proxy/mcp/ runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from authproxy.config.conditions import Condition

__all__ = ["DEFAULT_MAX_BODY", "METADATA_PATH", "McpConfig", "McpEndpoint", "ToolRule"]

METADATA_PATH = "/.well-known/oauth-protected-resource"  # RFC 9728, section 3

DEFAULT_MAX_BODY = 4 * 1024 * 1024  # one JSON-RPC POST; tool arguments are small, files go elsewhere


@dataclass(frozen=True, slots=True)
class ToolRule:
    """`name: [scopes]`, `name: deny` or `name: {scopes | any_of, pin, when}`, located in its file.

    `alternatives` is empty for `deny` (only the admin scope passes). Each alternative is all-of; a
    `{param}` in a scope binds the tool call's `arguments.param`, and an alternative whose arguments are
    missing does not apply.
    """

    name: str  # the tool name, or "*" for every tool the table does not name
    alternatives: tuple[tuple[str, ...], ...]
    file: str
    line: int
    # (argument, identity field): the call's `arguments.<argument>` is set to the caller's `user_id` or
    # `session_id` when absent, and a different value is refused; the admin scope is not pinned.
    pins: tuple[tuple[str, str], ...] = ()
    # `when: <CEL>` over `claims`, `tool.name` and `tool.arguments`: the call runs only when it is true too.
    when: Condition | None = None


@dataclass(frozen=True, slots=True)
class McpEndpoint:
    path: str  # a literal path, as clients call it ("/mcp")
    tools: tuple[ToolRule, ...]  # merged: the preset's, then the user's replacing by name
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class McpConfig:
    endpoints: tuple[McpEndpoint, ...]
    # RFC 9728 `authorization_servers`: where MCP clients go to get a token.
    authorization_servers: tuple[str, ...] = ()
    # The public base URL (`https://agents.example.com`) the metadata names; None: the request's own.
    resource: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    # Origins (`https://app.example.com`) a browser may call the endpoints from; None: the resource's own.
    allowed_origins: tuple[str, ...] | None = None
    # Pass the caller's token (header, cookie) on to the MCP upstream; off: it gets the identity headers only.
    forward_token: bool = False
