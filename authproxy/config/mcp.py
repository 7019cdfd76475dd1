"""The top-level `mcp` section -> McpConfig: MCP endpoints and their tool rules, every problem located.

    mcp:
      authorization_servers: [https://idp.example.com]   # RFC 9728 metadata; default: jwt.issuer
      resource: https://agents.example.com               # public base URL; default: the request's own
      max_body: 4m                                       # one POST, read whole to be checked; over it: 413
      allowed_origins: [https://app.example.com]         # browser Origins; default: the resource's own
      forward_token: false                               # pass the caller's token upstream (default: never)
      endpoints:
        /mcp:
          tools:
            search_docs: [docs:read]                     # all listed scopes are required
            run_agent: ["agents:{agent_id}:run"]         # {agent_id} binds arguments.agent_id
            cancel_run: {any_of: [["agents:{agent_id}:run"], ["teams:{team_id}:run"]]}
            my_notes: {scopes: [notes:read], pin: {user_id: user_id}}  # arguments.user_id := the caller's
            migrate: {scopes: [db:write], when: "tool.arguments.dry_run == true"}  # CEL, also for admins
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

from authproxy.config.conditions import Condition
from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_bool,
    read_choice,
    read_items,
    read_map,
    read_preset_file,
    read_section,
    read_str,
    read_value,
)
from authproxy.config.mcp_model import DEFAULT_MAX_BODY, METADATA_PATH, McpConfig, McpEndpoint, ToolRule
from authproxy.config.model import OidcIssuer, PolicyConfig, PublicRule, RouteRule
from authproxy.config.source import MapNode, Node, Scalar
from authproxy.config.values import split_http_url
from authproxy.config.when import read_when
from authproxy.errors import BadTarget
from authproxy.policy.mcp.tools import compile_tool
from authproxy.policy.patterns import parse_pattern
from authproxy.policy.target import parse_target

__all__ = ["endpoint_routes", "issuers_of", "read_mcp"]

_KEYS = model_keys(McpConfig)
_ENDPOINT_KEYS = model_keys(McpEndpoint, skip=("path",))  # the path is the endpoint's own key
# Not ToolRule's fields: `scopes` (one alternative) or `any_of` (several) are read into `alternatives`.
_TOOL_KEYS = ("any_of", "scopes", "pin", "when")
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
    """The McpConfig, None when MCP is not configured; Invalid after reporting problems."""
    node = top.get("mcp")
    preset = policy.preset if policy is not None else None
    base: dict[str, McpEndpoint] = {}
    if preset is not None:
        # A preset whose tools fail to load fails here, before the user's section is read over it.
        base = _preset_tools(report, top.key_line("policy"), preset, policy, (preset_dir, env))
    if node is None:
        return McpConfig(tuple(base.values()), issuers) if base else None
    section = read_section(report, "mcp", top.key_line("mcp"), node, _KEYS)
    checks = Checks()
    servers = checks.key(section, "authorization_servers", lambda p, n: _urls(report, p, n), issuers)
    resource = checks.key(section, "resource", lambda p, n: read_value(report, p, n, _base_url), None)
    max_body = checks.key(section, "max_body", lambda p, n: _read_size(report, p, n), DEFAULT_MAX_BODY)
    endpoints = checks.key(section, "endpoints", lambda p, n: _endpoints(report, p, n, base, preset), base)
    origins = checks.key(section, "allowed_origins", lambda p, n: _origins(report, p, n), None)
    forward = checks.key(section, "forward_token", lambda p, n: read_bool(report, p, n), False)
    checks.done()
    return McpConfig(tuple(endpoints.values()), servers, resource, max_body, origins, forward)


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
) -> dict[str, McpEndpoint]:
    preset_dir, env = where
    tools = _load_fragment(report, line, f"{preset}-mcp", preset, preset_dir, env, {})
    if policy is not None and policy.user_isolation:
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
) -> dict[str, McpEndpoint]:
    path = os.path.join(preset_dir, f"{name}.yaml")
    if not os.path.exists(path):
        return base  # a preset without MCP tools (or without isolation rules for them)
    there, section, clean = read_preset_file(
        report, line, path, f"{preset} MCP tools", _PRESET_KEYS, env, _PRESET_KEYS
    )
    node = section.get("endpoints")
    if node is None or not clean:
        raise Invalid  # reported under the preset's file: missing, or its own problems
    return _endpoints(there, "endpoints", node, base, preset)


def _endpoints(
    report: Report, label: str, node: Node, base: dict[str, McpEndpoint], preset: str | None
) -> dict[str, McpEndpoint]:
    """`base` with each endpoint's tools merged over its tools of the same path, by name."""
    checks = Checks()
    merged = dict(base)
    for key, value in read_map(report, label, node).items:
        where = f"{label}[{key.text!r}]"
        tools = checks.attempt(where, lambda: _endpoint(report, where, key, value, preset), None)  # noqa: B023
        if tools is None:
            continue
        previous = {t.name: t for t in merged[key.text].tools} if key.text in merged else {}
        previous.update({t.name: t for t in tools})
        merged[key.text] = McpEndpoint(key.text, tuple(previous.values()), report.file, key.line)
    checks.done()
    return merged


def _endpoint(report: Report, label: str, key: Scalar, node: Node, preset: str | None) -> list[ToolRule]:
    """The tools of the endpoint at path `key`."""
    try:
        _check_path(key.text)
    except ValueError as bad:
        raise report.invalid(key.line, f"{label}: {bad}") from None
    section = read_section(report, label, key.line, node, _ENDPOINT_KEYS, required=("tools",))
    tools = section.get("tools")
    if tools is None:
        raise Invalid  # missing (reported by read_section)
    return _tools(report, f"{label}.tools", tools, preset)


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(c in path for c in "{}*?"):
        raise ValueError("an MCP endpoint is a literal path such as /mcp (no patterns, no query)")
    try:
        parse_target(path)
    except BadTarget as bad:
        raise ValueError(bad.reason) from None


def _tools(report: Report, label: str, node: Node, preset: str | None) -> list[ToolRule]:
    checks = Checks()
    rules: list[ToolRule] = []
    for key, value in read_map(report, label, node).items:
        where = f"{label}[{key.text!r}]"
        rule = checks.attempt(where, lambda: _tool(report, where, key, value, preset), None)  # noqa: B023
        if rule is not None:
            rules.append(rule)
    checks.done()
    return rules


def _tool(report: Report, label: str, key: Scalar, node: Node, preset: str | None) -> ToolRule:
    alternatives, pins, when = _rule(report, label, node)
    try:
        compile_tool(key.text, alternatives, preset=preset)
    except ValueError as bad:
        raise report.invalid(key.line, f"{label}: {bad}") from None
    return ToolRule(key.text, alternatives, report.file, key.line, pins, when)


# (alternatives, pins, when)
_Rule = tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, str], ...], Condition | None]


def _rule(report: Report, label: str, node: Node) -> _Rule:
    if isinstance(node, Scalar) and node.value == "deny":
        return (), (), None
    if isinstance(node, MapNode):
        return _rule_map(report, label, node)
    if isinstance(node, Scalar) and not node.failed:
        raise report.invalid(
            node.line, f"{label}: expected a list of scopes, deny, or {{any_of: [[scopes], ...]}}"
        )
    return (_scopes(report, label, node),), (), None


def _rule_map(report: Report, label: str, node: MapNode) -> _Rule:
    section = read_section(report, label, node.line, node, _TOOL_KEYS)
    if ("any_of" in section.entries) == ("scopes" in section.entries):
        raise report.invalid(node.line, f"{label}: give either scopes or any_of")
    checks = Checks()
    no_alternatives: tuple[tuple[str, ...], ...] = ()
    if "scopes" in section.entries:
        alternatives = checks.key(section, "scopes", lambda p, n: (_scopes(report, p, n),), no_alternatives)
    else:
        alternatives = checks.key(section, "any_of", lambda p, n: _any_of(report, p, n), no_alternatives)
    no_pins: tuple[tuple[str, str], ...] = ()
    pins = checks.key(section, "pin", lambda p, n: _pins(report, p, n), no_pins)
    when = checks.key(section, "when", lambda p, n: read_when(report, p, n, "tool"), None)
    checks.done()
    return alternatives, pins, when


def _any_of(report: Report, label: str, node: Node) -> tuple[tuple[str, ...], ...]:
    return read_items(report, label, node, lambda path, item: _scopes(report, path, item), ())


def _pins(report: Report, label: str, node: Node) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, MapNode) or not node.items:
        raise report.invalid(node.line, f"{label}: expected a map of argument: user_id | session_id")
    checks = Checks()
    pins: list[tuple[str, str]] = []
    for key, value in node.items:
        path = f"{label}.{key.text}"
        field = checks.attempt(path, lambda: read_choice(report, path, value, _PIN_FIELDS), "")  # noqa: B023
        pins.append((key.text, field))
    checks.done()
    return tuple(pins)


def _scopes(report: Report, label: str, node: Node) -> tuple[str, ...]:
    # [] means any valid token
    return read_items(
        report, label, node, lambda path, item: read_str(report, path, item), "", allow_empty=True
    )


def _urls(report: Report, label: str, node: Node) -> tuple[str, ...]:
    def url(path: str, item: Node) -> str:
        return read_value(report, path, item, _server_url)

    return read_items(report, label, node, url, "", allow_empty=True)


def _origins(report: Report, label: str, node: Node) -> tuple[str, ...]:
    def origin(path: str, item: Node) -> str:
        return read_value(report, path, item, _base_url)

    return read_items(report, label, node, origin, "", allow_empty=True)  # []: no browser origin at all


def _server_url(url: str) -> str:
    split_http_url(url)
    return url


def _base_url(url: str) -> str:
    parts = split_http_url(url)
    if parts.query or parts.path not in ("", "/"):
        raise ValueError("must be a base URL such as https://agents.example.com (no path or query)")
    return url.rstrip("/")


def _read_size(report: Report, label: str, node: Node) -> int:
    if isinstance(node, Scalar) and isinstance(node.value, int) and not isinstance(node.value, bool):
        node = replace(node, value=str(node.value), substituted=True)  # a plain number of bytes
    return read_value(report, label, node, _size, "a size such as 4m, 512k or 65536")


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
