"""McpPolicy: the `mcp` section compiled once per config; which routes speak MCP and what each tool needs.

The route table decides which requests reach an MCP endpoint (config/mcp.py adds the endpoint's rule and
its metadata's public rule) and marks their paths (`marks`), so no second router reads the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authproxy.config.mcp_model import METADATA_PATH, McpConfig
from authproxy.errors import ConfigError, Problem
from authproxy.policy.mcp.tools import CompiledTool, ToolVerdict, check_call, compile_tool, may_call_some

__all__ = ["McpPolicy", "McpSite"]


def _segments(path: str) -> tuple[str, ...]:
    return tuple(segment for segment in path.split("/") if segment)


_DENY = CompiledTool("*", ())
# Per preset, the tools whose results the upstream cuts to the caller's roster: AgentOS's
# `get_agentos_config` filters its agents/teams/workflows as `GET /config` does (agno/os/mcp.py).
_ROSTER_TOOLS = {"agentos": frozenset({"get_agentos_config"})}


@dataclass(frozen=True, slots=True)
class McpSite:
    """One MCP endpoint: its path and its compiled tool table."""

    path: str
    tools: Mapping[str, CompiledTool]
    default: CompiledTool  # for tools the table does not name: its "*" rule, else deny
    # Tools whose result the upstream narrows to the caller's read scopes, as it narrows AgentOS
    # `GET /config`: the proxy cuts their results the same way (proxy/mcp/results.py).
    roster_tools: frozenset[str] = frozenset()

    def tool(self, name: str) -> CompiledTool:
        return self.tools.get(name) or self.default

    def scopes(self) -> tuple[str, ...]:
        """The scopes the table names, ids unbound (`agents:{agent_id}:run` grants as `agents:run`)."""
        found: dict[str, None] = {}
        for tool in (*self.tools.values(), self.default):
            for alternative in tool.alternatives:
                for scope in alternative.requirement.scopes:
                    parts = scope.split(":")
                    found[f"{parts[0]}:{parts[2]}" if len(parts) == 3 else scope] = None
        return tuple(sorted(found))


class McpPolicy:
    __slots__ = ("_metadata", "_sites", "admin_scope", "config", "sites")

    def __init__(self, config: McpConfig, sites: tuple[McpSite, ...], admin_scope: str | None) -> None:
        self.config = config
        self.admin_scope = admin_scope
        self.sites = sites
        self._sites: dict[str, McpSite] = {}
        self._metadata: dict[str, McpSite | None] = {METADATA_PATH: None, METADATA_PATH + "/": None}
        for site in sites:
            for path in (site.path.rstrip("/") or "/", site.path.rstrip("/") + "/"):
                self._sites[path] = site
                self._metadata[METADATA_PATH + path.rstrip("/")] = site

    @classmethod
    def build(cls, config: McpConfig, *, preset: str | None, admin_scope: str | None) -> McpPolicy:
        """Compile every tool rule; raise ConfigError for one that does not compile (config checks first)."""
        problems: list[Problem] = []
        sites: list[McpSite] = []
        for endpoint in config.endpoints:
            tools: dict[str, CompiledTool] = {}
            for rule in endpoint.tools:
                try:
                    tools[rule.name] = compile_tool(
                        rule.name, rule.alternatives, preset=preset, pins=rule.pins, when=rule.when
                    )
                except ValueError as bad:
                    problems.append(Problem(rule.file, rule.line, f"MCP tool {rule.name!r}: {bad}"))
            default = tools.pop("*", _DENY)
            sites.append(McpSite(endpoint.path, tools, default, _ROSTER_TOOLS.get(preset or "", frozenset())))
        if problems:
            raise ConfigError(problems)
        return cls(config, tuple(sites), admin_scope)

    def marks(self) -> dict[tuple[str, ...], tuple[McpSite | None, bool]]:
        """Decoded path segments -> (the endpoint, whether the path is its metadata rather than the endpoint
        itself), for the route table to mark: every request to these paths is an MCP request, whichever rule
        matches it (`/%6Dcp` and `/mcp/` are `/mcp` there too)."""
        found: dict[tuple[str, ...], tuple[McpSite | None, bool]] = {}
        for path, site in self._sites.items():
            found[_segments(path)] = (site, False)
        for path, described in self._metadata.items():
            found[_segments(path)] = (described, True)
        return found

    def check(
        self, site: McpSite, name: str, arguments: Mapping[str, object], granted: frozenset[str]
    ) -> ToolVerdict:
        return check_call(site.tool(name), arguments, granted, self.admin_scope)

    def listed(self, site: McpSite, name: str, granted: frozenset[str]) -> bool:
        return may_call_some(site.tool(name), granted, self.admin_scope)
