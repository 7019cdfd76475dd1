"""McpPolicy: the `mcp` section compiled once per config; which paths speak MCP and what each tool needs.

`site_for(raw_path)` is the one check every proxied request pays when MCP is configured: a dict lookup on
the raw path, plus a decode only when the path carries a percent-escape (so `/%6Dcp` is `/mcp` too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authproxy.config.mcp_model import McpConfig
from authproxy.errors import BadTarget, ConfigError, Problem
from authproxy.policy.mcp.tools import CompiledTool, ToolVerdict, check_call, compile_tool, may_call_some
from authproxy.policy.target import parse_target

__all__ = ["METADATA_PATH", "McpPolicy", "McpSite"]

METADATA_PATH = "/.well-known/oauth-protected-resource"  # RFC 9728, section 3
_DENY = CompiledTool("*", ())


@dataclass(frozen=True, slots=True)
class McpSite:
    """One MCP endpoint: its path and its compiled tool table."""

    path: str
    tools: Mapping[str, CompiledTool]
    default: CompiledTool  # for tools the table does not name: its "*" rule, else deny

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
                        rule.name, rule.alternatives, preset=preset, pins=rule.pins
                    )
                except ValueError as bad:
                    problems.append(Problem(rule.file, rule.line, f"MCP tool {rule.name!r}: {bad}"))
            default = tools.pop("*", _DENY)
            sites.append(McpSite(endpoint.path, tools, default))
        if problems:
            raise ConfigError(problems)
        return cls(config, tuple(sites), admin_scope)

    def claims(self, method: str, raw_path: str) -> bool:
        """Whether proxy/mcp/ answers this request (an endpoint, or a read of its metadata): the one check
        every proxied request pays once MCP is configured."""
        path = raw_path.partition("?")[0]
        if path in self._sites:
            return True
        if path in self._metadata:
            return method in ("GET", "HEAD")
        return "%" in path and self.site_for(path) is not None

    def site_for(self, raw_path: str) -> McpSite | None:
        """The MCP endpoint a request target names, however it spells the path; None for any other."""
        path = raw_path.partition("?")[0]
        site = self._sites.get(path)
        if site is None and "%" in path:
            try:
                segments = parse_target(path).segments
            except BadTarget:
                return None  # the gate refuses it
            site = self._sites.get("/" + "/".join(segments))
        return site

    def metadata_site(self, raw_path: str) -> McpSite | None:
        """The endpoint a protected-resource metadata path describes; None for the root form."""
        return self._metadata.get(raw_path.partition("?")[0])

    def check(
        self, site: McpSite, name: str, arguments: Mapping[str, object], granted: frozenset[str]
    ) -> ToolVerdict:
        return check_call(site.tool(name), arguments, granted, self.admin_scope)

    def listed(self, site: McpSite, name: str, granted: frozenset[str]) -> bool:
        return may_call_some(site.tool(name), granted, self.admin_scope)
