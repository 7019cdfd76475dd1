"""The top-level `mcp` section -> McpConfig: MCP endpoints and their tool rules, every problem located.

    mcp:
      authorization_servers: [https://idp.example.com]   # RFC 9728 metadata; default: jwt.issuer
      resource: https://agents.example.com               # public base URL; default: the request's own
      max_body: 4m                                       # one POST, read whole to be checked; over it: 413
      endpoints:
        /mcp:
          tools:
            search_docs: [docs:read]                     # all listed scopes are required
            run_agent: ["agents:{agent_id}:run"]         # {agent_id} binds arguments.agent_id
            cancel_run: {any_of: [["agents:{agent_id}:run"], ["teams:{team_id}:run"]]}
            my_notes: {scopes: [notes:read], pin: {user_id: user_id}}  # arguments.user_id := the caller's
            drop_tables: deny                            # only the admin scope
            "*": deny                                    # every tool not named (the default)

Under `policy.preset: agentos` the preset's fragment (presets/agentos-mcp.yaml, the same form) comes
first; the user's endpoint of the same path replaces its tools by name, so one line overrides one tool.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping as EnvMap
from dataclasses import replace

from authproxy.config.fields import (
    Report,
    Section,
    model_keys,
    or_none,
    read_choice,
    read_list,
    read_preset_file,
    read_section,
    read_str,
    read_value,
)
from authproxy.config.mcp_model import DEFAULT_MAX_BODY, METADATA_PATH, McpConfig, McpEndpoint, ToolRule
from authproxy.config.model import OidcIssuer, PolicyConfig, PublicRule, RouteRule
from authproxy.config.source import MapNode, Node, Scalar
from authproxy.config.values import split_http_url
from authproxy.errors import BadTarget
from authproxy.policy.mcp.tools import compile_tool
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.target import parse_target

__all__ = ["endpoint_routes", "issuers_of", "read_mcp"]

_KEYS = model_keys(McpConfig)
_ENDPOINT_KEYS = model_keys(McpEndpoint, skip=("path",))  # the path is the endpoint's own key
# Not ToolRule's fields: `scopes` (one alternative) or `any_of` (several) are read into `alternatives`.
_TOOL_KEYS = ("any_of", "scopes", "pin")
_PRESET_KEYS = ("endpoints",)
_PIN_FIELDS = ("user_id", "session_id")  # the caller's identity fields (jwt.claims)
_SIZE = re.compile(r"(\d+)\s*([kKmM]?)(i?[bB])?")
# The HTTP methods of the Streamable HTTP transport: POST messages, GET the server's stream, DELETE the
# session. OPTIONS stays with the policy's other rules (a CORS preflight carries no token).
_TRANSPORT_METHODS = "GET,POST,DELETE"


def read_mcp(
    report: Report,
    top: Section,
    policy: PolicyConfig | None,
    issuers: tuple[str, ...],
    preset_dir: str,
    env: EnvMap[str, str],
) -> McpConfig | None:
    """The McpConfig, None when MCP is not configured; reports problems (then returns None too)."""
    node = top.get("mcp")
    preset = policy.preset if policy is not None else None
    base: dict[str, McpEndpoint] = {}
    if preset is not None:
        fragment = _preset_tools(report, top.key_line("policy"), preset, policy, (preset_dir, env))
        if fragment is None:
            return None
        base = fragment
    if node is None:
        return McpConfig(tuple(base.values()), issuers) if base else None
    section = or_none(read_section, report, "mcp", top.key_line("mcp"), node, _KEYS)
    if section is None:
        return None
    ok = True
    servers: tuple[str, ...] | None = issuers
    if (value := section.get("authorization_servers")) is not None:
        servers = _urls(report, "mcp.authorization_servers", value)
    resource: str | None = None
    if (value := section.get("resource")) is not None:
        resource = or_none(read_value, report, "mcp.resource", value, _base_url)
        ok = resource is not None
    max_body: int | None = DEFAULT_MAX_BODY
    if (value := section.get("max_body")) is not None:
        max_body = _read_size(report, "mcp.max_body", value)
    endpoints: dict[str, McpEndpoint] | None = dict(base)
    if (value := section.get("endpoints")) is not None:
        endpoints = _endpoints(report, value, base, preset)
    if not ok or servers is None or max_body is None or endpoints is None:
        return None
    return McpConfig(tuple(endpoints.values()), servers, resource, max_body)


def endpoint_routes(policy: PolicyConfig, mcp: McpConfig | None) -> PolicyConfig:
    """The policy with a rule that lets any valid token reach each MCP endpoint's transport methods, and a
    public `GET` rule for each endpoint's protected-resource metadata (RFC 9728) and the origin's.

    The HTTP request is then the gate's ordinary decision (`explain` says the same), and the MCP stage
    authorizes each JSON-RPC message in it. A rule the policy already has for the same methods and path
    stays, so a deployment can require more of the whole endpoint.
    """
    if mcp is None or not mcp.endpoints:
        return policy
    have = {
        parse_pattern(key).canonical
        for key in [r.key for r in policy.routes] + [p.key for p in policy.public]
    }
    added = []
    for endpoint in mcp.endpoints:
        rule = RouteRule(f"{_TRANSPORT_METHODS} {endpoint.path}", (), endpoint.file, endpoint.line)
        if parse_pattern(rule.key).canonical not in have:
            added.append(rule)
    metadata = [METADATA_PATH] + [METADATA_PATH + e.path.rstrip("/") for e in mcp.endpoints]
    first = mcp.endpoints[0]
    public = [PublicRule(f"GET {path}", first.file, first.line) for path in dict.fromkeys(metadata)]
    public = [rule for rule in public if parse_pattern(rule.key).canonical not in have]
    return replace(policy, routes=(*added, *policy.routes), public=(*policy.public, *public))


def _preset_tools(
    report: Report,
    line: int,
    preset: str,
    policy: PolicyConfig | None,
    where: tuple[str, EnvMap[str, str]],
) -> dict[str, McpEndpoint] | None:
    preset_dir, env = where
    tools = _load_fragment(report, line, f"{preset}-mcp", preset, preset_dir, env, {})
    if tools is not None and policy is not None and policy.user_isolation:
        # Agno's user_isolation pins the session tools too: merged over the preset's tools by name.
        tools = _load_fragment(report, line, f"{preset}-mcp-isolation", preset, preset_dir, env, tools)
    return tools


def _load_fragment(
    report: Report,
    line: int,
    name: str,
    preset: str,
    preset_dir: str,
    env: EnvMap[str, str],
    base: dict[str, McpEndpoint],
) -> dict[str, McpEndpoint] | None:
    path = os.path.join(preset_dir, f"{name}.yaml")
    if not os.path.exists(path):
        return base  # a preset without MCP tools (or without isolation rules for them)
    read = or_none(
        read_preset_file, report, line, path, f"{preset} MCP tools", _PRESET_KEYS, env, _PRESET_KEYS
    )
    if read is None:
        return None
    there, section, clean = read
    node = section.get("endpoints")
    if node is None or not clean:
        return None
    return _endpoints(there, node, base, preset, label="endpoints")


def _endpoints(
    report: Report,
    node: Node,
    base: dict[str, McpEndpoint],
    preset: str | None,
    label: str = "mcp.endpoints",
) -> dict[str, McpEndpoint] | None:
    if not isinstance(node, MapNode):
        or_none(read_section, report, label, node.line, node, ())  # reports the type
        return None
    merged = dict(base)
    ok = True
    for key, value in node.items:
        where = f"{label}[{key.text!r}]"
        try:
            _check_path(key.text)
        except ValueError as bad:
            report.error(key.line, f"{where}: {bad}")
            ok = False
            continue
        section = or_none(read_section, report, where, key.line, value, _ENDPOINT_KEYS, required=("tools",))
        tools_node = section.get("tools") if section is not None else None
        tools = _tools(report, f"{where}.tools", tools_node, preset) if tools_node is not None else None
        if tools is None:
            ok = False
            continue
        previous = {t.name: t for t in merged[key.text].tools} if key.text in merged else {}
        previous.update({t.name: t for t in tools})
        merged[key.text] = McpEndpoint(key.text, tuple(previous.values()), report.file, key.line)
    return merged if ok else None


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(c in path for c in "{}*?"):
        raise ValueError("an MCP endpoint is a literal path such as /mcp (no patterns, no query)")
    try:
        parse_target(path)
    except BadTarget as bad:
        raise ValueError(bad.reason) from None


def _tools(report: Report, label: str, node: Node, preset: str | None) -> list[ToolRule] | None:
    if not isinstance(node, MapNode):
        or_none(read_section, report, label, node.line, node, ())
        return None
    rules: list[ToolRule] = []
    ok = True
    for key, value in node.items:
        where = f"{label}[{key.text!r}]"
        rule = _rule(report, where, value)
        if rule is None:
            ok = False
            continue
        try:
            compile_tool(key.text, rule[0], preset=preset)
        except ValueError as bad:
            report.error(key.line, f"{where}: {bad}")
            ok = False
            continue
        rules.append(ToolRule(key.text, rule[0], report.file, key.line, rule[1]))
    return rules if ok else None


_Rule = tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...]]  # (alternatives, pins)


def _rule(report: Report, label: str, node: Node) -> _Rule | None:
    if isinstance(node, Scalar) and node.value == "deny":
        return (), ()
    if isinstance(node, MapNode):
        return _rule_map(report, label, node)
    if isinstance(node, Scalar) and not node.failed:
        report.error(node.line, f"{label}: expected a list of scopes, deny, or {{any_of: [[scopes], ...]}}")
        return None
    scopes = _scopes(report, label, node)
    return None if scopes is None else ((scopes,), ())


def _rule_map(report: Report, label: str, node: MapNode) -> _Rule | None:
    section = or_none(read_section, report, label, node.line, node, _TOOL_KEYS)
    if section is None:
        return None
    if ("any_of" in section.entries) == ("scopes" in section.entries):
        report.error(node.line, f"{label}: give either scopes or any_of")
        return None
    alternatives: tuple[tuple[str, ...], ...] | None
    if (value := section.get("scopes")) is not None:
        scopes = _scopes(report, f"{label}.scopes", value)
        alternatives = None if scopes is None else (scopes,)
    else:
        value = section.entries["any_of"]
        items = or_none(read_list, report, f"{label}.any_of", value)
        found = [_scopes(report, f"{label}.any_of[{i}]", item) for i, item in enumerate(items or ())]
        alternatives = tuple(s for s in found if s is not None) if items and None not in found else None
    pins: tuple[tuple[str, str], ...] | None = ()
    if (value := section.get("pin")) is not None:
        pins = _pins(report, f"{label}.pin", value)
    return None if alternatives is None or pins is None else (alternatives, pins)


def _pins(report: Report, label: str, node: Node) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(node, MapNode) or not node.items:
        report.error(node.line, f"{label}: expected a map of argument: user_id | session_id")
        return None
    found = [
        (key.text, or_none(read_choice, report, f"{label}.{key.text}", value, _PIN_FIELDS))
        for key, value in node.items
    ]
    return tuple((a, f) for a, f in found if f is not None) if all(f for _, f in found) else None


def _scopes(report: Report, label: str, node: Node) -> tuple[str, ...] | None:
    items = or_none(read_list, report, label, node, allow_empty=True)  # [] means any valid token
    if items is None:
        return None
    scopes = [or_none(read_str, report, f"{label}[{i}]", item) for i, item in enumerate(items)]
    return tuple(s for s in scopes if s is not None) if None not in scopes else None


def _urls(report: Report, label: str, node: Node) -> tuple[str, ...] | None:
    items = or_none(read_list, report, label, node, allow_empty=True)
    if items is None:
        return None
    urls = [or_none(read_value, report, f"{label}[{i}]", item, _server_url) for i, item in enumerate(items)]
    return tuple(u for u in urls if u is not None) if None not in urls else None


def _server_url(url: str) -> str:
    split_http_url(url)
    return url


def _base_url(url: str) -> str:
    parts = split_http_url(url)
    if parts.query or parts.path not in ("", "/"):
        raise ValueError("must be a base URL such as https://agents.example.com (no path or query)")
    return url.rstrip("/")


def _read_size(report: Report, label: str, node: Node) -> int | None:
    if isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool):
        node = replace(node, value=str(node.value), substituted=True)  # a plain number of bytes
    return or_none(read_value, report, label, node, _size, "a size such as 4m, 512k or 65536")


def _size(text: str) -> int:
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"expected a size such as 4m, 512k or 65536; got '{text}'")
    size = int(found.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[found.group(2).lower()]
    if size == 0:
        raise ValueError("must be more than zero")
    return size


def issuers_of(keys: tuple[object, ...], issuer: str | None) -> tuple[str, ...]:
    """The default authorization servers: the pinned issuer, else every OIDC issuer a key comes from."""
    if issuer is not None:
        return (issuer,)
    return tuple(dict.fromkeys(k.issuer for k in keys if isinstance(k, OidcIssuer)))
