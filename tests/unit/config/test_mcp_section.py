"""The `mcp` section: endpoints, tool rules and discovery settings, every problem as FILE:LINE, and the
agentos preset's tool table merged under the user's tools by name."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

import pytest

from authproxy.config import PRESET_DIR
from authproxy.config.mcp_model import DEFAULT_MAX_BODY, McpEndpoint, ToolRule

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


def mcp(head: str, body: str) -> str:
    """`head` (7 lines) + `mcp:` on line 8 + `body` from line 9."""
    return head + "mcp:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def test_a_tool_table_is_read_with_its_defaults(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(
        mcp(
            head,
            """\
            endpoints:
              /tools/mcp:
                tools:
                  read_note: ["notes:{note_id}:read"]
                  whoami: []
                  purge: deny
                  move: {any_of: [["a:{x}:w"], ["b:{y}:w"]]}
            """,
        )
    )
    assert config.mcp is not None
    assert config.mcp.max_body == DEFAULT_MAX_BODY and config.mcp.authorization_servers == ()
    assert config.mcp.endpoints == (
        McpEndpoint(
            "/tools/mcp",
            (
                ToolRule("read_note", (("notes:{note_id}:read",),), "config.yaml", 12),
                ToolRule("whoami", ((),), "config.yaml", 13),
                ToolRule("purge", (), "config.yaml", 14),
                ToolRule("move", (("a:{x}:w",), ("b:{y}:w",)), "config.yaml", 15),
            ),
            "config.yaml",
            10,
        ),
    )
    rule = config.policy.routes[0]  # the transport's methods reach the endpoint with any valid token
    assert (rule.key, rule.scopes) == ("GET,POST,DELETE /tools/mcp", ())


def test_discovery_settings_and_the_issuer_default(cfg: ConfigDir, head: str) -> None:
    pinned = head.replace("  audience: api\n", "  audience: api\n  issuer: https://idp.example.com\n")
    config = cfg.config(mcp(pinned, "endpoints: {/mcp: {tools: {}}}\n"))
    assert config.mcp is not None and config.mcp.authorization_servers == ("https://idp.example.com",)
    text = (
        "authorization_servers: [https://a.example.com]\nresource: https://api.example.com/\nmax_body: 64k\n"
    )
    config = cfg.config(mcp(head, text + "endpoints: {/mcp: {tools: {}}}\n"))
    assert config.mcp is not None
    assert (config.mcp.authorization_servers, config.mcp.resource, config.mcp.max_body) == (
        ("https://a.example.com",),
        "https://api.example.com",
        65536,
    )
    assert (config.mcp.allowed_origins, config.mcp.forward_token) == (None, False)
    text = "allowed_origins: [https://app.example.com/]\nforward_token: true\n"
    config = cfg.config(mcp(head, text + "endpoints: {/mcp: {tools: {}}}\n"))
    assert config.mcp is not None
    assert (config.mcp.allowed_origins, config.mcp.forward_token) == (("https://app.example.com",), True)


E = "config.yaml:10: mcp.endpoints"
T = "config.yaml:10: mcp.endpoints['/mcp'].tools['t']"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("endpoints:\n  mcp: {tools: {}}\n", f"{E}['mcp']: an MCP endpoint is a literal path"),
        ("endpoints:\n  /m/{x}: {tools: {}}\n", f"{E}['/m/{{x}}']: an MCP endpoint is a"),
        ("endpoints:\n  /mcp: {}\n", "config.yaml:10: missing required key 'tools' in mcp.endpoints['/mcp']"),
        ("endpoints:\n  /mcp: {tools: {t: read}}\n", f"{T}: expected a list of scopes, deny, or"),
        ("endpoints:\n  /mcp: {tools: {t: [a:b:c:d]}}\n", f"{T}: scope 'a:b:c:d' has more than 3"),
        ("endpoints:\n  /mcp: {tools: {t: ['a:b:{x']}}\n", f"{T}: scope 'a:b:{{x'"),
        ("max_body: 0\n", "config.yaml:9: mcp.max_body: must be more than zero"),
        ("max_body: lots\n", "config.yaml:9: mcp.max_body: expected a size such as 4m, 512k or 65536"),
        ("resource: https://a.example.com/x\n", "config.yaml:9: mcp.resource: must be a base URL"),
        ("authorization_servers: [ftp://x]\n", "config.yaml:9: mcp.authorization_servers[0]: must be an"),
        ("endpoint: {}\n", "config.yaml:9: unknown key 'endpoint' in mcp (did you mean 'endpoints'?)"),
        (
            "allowed_origins: [https://a.example.com/app]\n",
            "config.yaml:9: mcp.allowed_origins[0]: must be a",
        ),
        ("allowed_origins: https://a.example.com\n", "config.yaml:9: mcp.allowed_origins: expected a list"),
        ("forward_token: sometimes\n", "config.yaml:9: mcp.forward_token: expected"),
    ],
)
def test_a_bad_mcp_section_is_reported_where_it_is(
    cfg: ConfigDir, head: str, body: str, message: str
) -> None:
    errors = cfg.errors(mcp(head, body))
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_the_agentos_preset_brings_agnos_tools_and_a_user_line_replaces_one(
    cfg: ConfigDir, head: str
) -> None:
    fragment = os.path.join(PRESET_DIR, "agentos-mcp.yaml")
    preset = head + "policy:\n  preset: agentos\n"
    config = cfg.config(preset)
    assert config.mcp is not None
    (endpoint,) = config.mcp.endpoints
    tools = {rule.name: rule for rule in endpoint.tools}
    pinned = (("user_id", "user_id"),)
    assert tools["run_agent"] == ToolRule("run_agent", (("agents:{agent_id}:run",),), fragment, 28, pinned)
    assert tools["*"].alternatives == () and len(tools) == 9
    mine = "mcp:\n  endpoints:\n    /mcp:\n      tools:\n"
    mine += "        run_agent: [agents:run]\n        my_tool: [x:read]\n"
    config = cfg.config(preset + mine)
    assert config.mcp is not None
    tools = {rule.name: rule for rule in config.mcp.endpoints[0].tools}
    assert tools["run_agent"] == ToolRule("run_agent", (("agents:run",),), "config.yaml", 14)
    assert tools["my_tool"].alternatives == (("x:read",),) and tools["get_sessions"].file == fragment


def test_user_isolation_pins_the_session_tools_as_agno_does(cfg: ConfigDir, head: str) -> None:
    preset = head + "policy:\n  preset: agentos\n"
    pinned = (("user_id", "user_id"),)
    plain = cfg.config(preset).mcp
    assert plain is not None
    assert {r.name: r.pins for r in plain.endpoints[0].tools}["get_sessions"] == ()
    isolated = cfg.config(preset + "  user_isolation: true\n").mcp
    assert isolated is not None
    tools = {rule.name: rule for rule in isolated.endpoints[0].tools}
    fragment = os.path.join(PRESET_DIR, "agentos-mcp-isolation.yaml")
    assert tools["get_sessions"] == ToolRule("get_sessions", (("sessions:read",),), fragment, 9, pinned)
    assert tools["get_session_runs"].pins == pinned and tools["get_session_runs"].file == fragment
    assert tools["run_agent"].pins == pinned and len(tools) == 9  # the rest of the preset's table stays


def test_without_an_mcp_section_or_preset_nothing_is_inspected(cfg: ConfigDir, head: str) -> None:
    assert cfg.config(head).mcp is None


def test_a_pinned_argument_is_read_and_checked(cfg: ConfigDir, head: str) -> None:
    rule_text = "mine: {scopes: [s:read], pin: {user_id: user_id, sid: session_id}}"
    body = f"endpoints:\n  /mcp:\n    tools:\n      {rule_text}\n"
    config = cfg.config(mcp(head, body))
    assert config.mcp is not None
    (rule,) = config.mcp.endpoints[0].tools
    assert (rule.alternatives, rule.pins) == ((("s:read",),), (("user_id", "user_id"), ("sid", "session_id")))
    where = "config.yaml:12: mcp.endpoints['/mcp'].tools['mine']"
    bad = body.replace("sid: session_id", "sid: email")
    assert cfg.errors(mcp(head, bad)) == [f"{where}.pin.sid: must be one of user_id, session_id; got 'email'"]
    both = body.replace("scopes: [s:read]", "scopes: [s:read], any_of: [[s:write]]")
    assert cfg.errors(mcp(head, both)) == [f"{where}: give either scopes or any_of"]
