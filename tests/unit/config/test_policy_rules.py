"""The policy section: located rules, pattern syntax (policy/patterns.py), duplicates, scopes, unmapped,
and the preset merged under the user's rules."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.http_parser import HttpRequestParser

from authproxy.config import PRESET_DIR
from authproxy.config.model import PublicRule, RouteRule
from authproxy.policy.patterns import RULE_METHODS

if TYPE_CHECKING:
    from tests.rigs.configdir import ConfigDir


def policy(head: str, body: str) -> str:
    """`head` (7 lines) + `policy:` on line 8 + `body` from line 9."""
    return head + "policy:\n" + textwrap.indent(textwrap.dedent(body), "  ")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("GET agents", "path 'agents' must start with '/'"),
        ("get /agents", "method 'get' must be upper-case: write GET"),
        ("GET /a/**/b", "'**' may only be the last segment"),
        ("GET /a b", "must be 'METHOD PATH' or 'PATH' (a path holds no spaces)"),  # the key is said once
        (
            "GTE /agents",
            "unknown method 'GTE' (did you mean GET?): such requests are refused (400), so the "
            "rule could never match",
        ),
        (
            "GET,PSOT /agents",
            "unknown method 'PSOT' (did you mean POST?): such requests are refused (400), "
            "so the rule could never match",
        ),
        (
            "FOO /agents",
            "unknown method 'FOO': such requests are refused (400), so the rule could never match",
        ),
        (
            "CONNECT /agents",
            "unknown method 'CONNECT': such requests are refused (400), so the rule could never match",
        ),
        ("GET /a/{1x}", "'{1x}': a parameter name is a letter or '_' then letters, digits or '_'"),
    ],
)
def test_bad_route_pattern_is_refused(cfg: ConfigDir, head: str, key: str, message: str) -> None:
    text = policy(head, f'routes:\n  "{key}": [x]\n')
    assert cfg.errors(text) == [f'config.yaml:10: policy.routes["{key}"]: {message}']


def test_rule_methods_are_the_methods_a_request_can_carry() -> None:
    # The request parser's own verdict: every method a rule may name parses, a misspelt one does not.
    parsed = [m for m in sorted(RULE_METHODS) if _parses(m)]
    assert parsed == sorted(RULE_METHODS)
    assert not _parses("GTE")


def _parses(method: str) -> bool:
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(None, loop, 2**16)
        try:
            parser.feed_data(f"{method} /agents HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        except BadHttpMethod:
            return False
        return True
    finally:
        loop.close()


def test_bad_public_pattern_is_refused(cfg: ConfigDir, head: str) -> None:
    text = policy(head, "public:\n  - /ok\n  - health\n")
    assert cfg.errors(text) == ["config.yaml:11: policy.public[1]: path 'health' must start with '/'"]


@pytest.mark.parametrize(
    ("first", "second"),
    [("GET /a", "GET /a/"), ("GET,HEAD /x/{id}", "HEAD,GET /x/{other}"), ("/docs", "* /docs")],
)
def test_two_rules_for_one_route_are_refused(cfg: ConfigDir, head: str, first: str, second: str) -> None:
    text = policy(head, f'routes:\n  "{first}": [a]\n  "{second}": [b]\n')
    assert cfg.errors(text) == [
        f"config.yaml:11: policy.routes[\"{second}\"]: the same route as '{first}' (line 10)"
    ]


def test_public_and_protected_rule_for_one_route_is_refused(cfg: ConfigDir, head: str) -> None:
    text = policy(head, 'public: [GET /health]\nroutes:\n  "GET /health/": [ops:read]\n')
    assert cfg.errors(text) == [
        "config.yaml:11: policy.routes[\"GET /health/\"]: the same route as 'GET /health' (line 9)"
    ]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ("[items read]", 'policy.routes["GET /a"][0]: a scope cannot contain whitespace'),
        ("['']", 'policy.routes["GET /a"][0]: must not be empty'),
        (
            "[ok, 5]",
            'policy.routes["GET /a"][1]: expected a string, got an integer (quote it to make it text)',
        ),
        ("items:read", 'policy.routes["GET /a"]: expected a list, got a string'),
        ("", 'policy.routes["GET /a"]: expected a list, got nothing (null)'),
    ],
)
def test_bad_scopes_are_refused(cfg: ConfigDir, head: str, scopes: str, message: str) -> None:
    text = policy(head, f'routes:\n  "GET /a": {scopes}\n')
    assert cfg.errors(text) == [f"config.yaml:10: {message}"]


def test_empty_scope_list_means_any_valid_token(cfg: ConfigDir, head: str) -> None:
    routes = cfg.config(policy(head, 'routes:\n  "GET /me": []\n')).policy.routes
    assert routes == (RouteRule("GET /me", (), "config.yaml", 10),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("admin_scope: 'a b'", "config.yaml:9: policy.admin_scope: a scope cannot contain whitespace"),
        ("admin_scope: ''", "config.yaml:9: policy.admin_scope: must not be empty"),
        (
            "unmapped: allow",
            "config.yaml:9: policy.unmapped: must be one of deny, authenticated; got 'allow'",
        ),
        ("preset: django", "config.yaml:9: policy.preset: must be one of agentos; got 'django'"),
        ("public: /docs", "config.yaml:9: policy.public: expected a list, got a string"),
        ("routes: [GET /a]", "config.yaml:9: policy.routes: expected a map, got a list"),
        ("rules: {}", "config.yaml:9: unknown key 'rules' in policy (did you mean 'routes'?)"),
    ],
)
def test_bad_policy_field_is_refused(cfg: ConfigDir, head: str, body: str, message: str) -> None:
    assert cfg.errors(policy(head, body + "\n")) == [message]


def test_unmapped_authenticated_is_a_warning(cfg: ConfigDir, head: str) -> None:
    config, warnings = cfg.load(policy(head, "unmapped: authenticated\n"))
    assert config.policy.unmapped == "authenticated"
    assert warnings == [
        "config.yaml:9: policy.unmapped: authenticated lets any valid token reach routes no rule names"
    ]


# --- presets ---------------------------------------------------------------------------------

PRESET = """\
admin_scope: preset:admin
public:
  - /health
  - GET /config
routes:
  "GET /agents": [agents:read]
  "POST /agents/{agent_id}/runs": [agents:run]
  "GET /teams": [teams:read]
"""


@pytest.fixture
def preset(cfg: ConfigDir, tmp_path: Path) -> Path:
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "agentos.yaml").write_text(PRESET)
    cfg.preset_dir = presets
    return presets / "agentos.yaml"


def test_user_rules_replace_preset_rules_with_the_same_route(cfg: ConfigDir, head: str, preset: Path) -> None:
    body = """\
        preset: agentos
        public:
          - POST /agents/{id}/runs
        routes:
          "GET /agents/": [custom:read]
          "GET /config": [config:read]
          "GET /extra": []
        """
    config = cfg.config(policy(head, body))
    p = str(preset)
    assert config.policy.preset == "agentos"
    assert config.policy.admin_scope == "preset:admin"
    assert config.policy.public == (
        PublicRule("/health", p, 3),
        PublicRule("POST /agents/{id}/runs", "config.yaml", 11),
    )
    assert config.policy.routes == (
        RouteRule("GET /teams", ("teams:read",), p, 8),
        RouteRule("GET /agents/", ("custom:read",), "config.yaml", 13),
        RouteRule("GET /config", ("config:read",), "config.yaml", 14),
        RouteRule("GET /extra", (), "config.yaml", 15),
    )


def test_user_admin_scope_wins_over_the_preset(cfg: ConfigDir, head: str, preset: Path) -> None:
    config = cfg.config(policy(head, "preset: agentos\nadmin_scope: mine:admin\n"))
    assert config.policy.admin_scope == "mine:admin"
    assert len(config.policy.routes) == 3


def test_preset_problems_are_located_in_the_preset_file(cfg: ConfigDir, head: str, preset: Path) -> None:
    preset.write_text(PRESET.replace('"GET /teams"', '"GET teams"') + "unmapped: deny\n")
    errors = cfg.errors(policy(head, "preset: agentos\n"))
    assert errors == [
        f"{preset}:8: routes[\"GET teams\"]: path 'teams' must start with '/'",
        f"{preset}:9: unknown key 'unmapped'",
    ]


def test_preset_syntax_error_is_located_in_the_preset_file(cfg: ConfigDir, head: str, preset: Path) -> None:
    preset.write_text('routes:\n  "GET /a": [x\n')
    errors = cfg.errors(policy(head, "preset: agentos\n"))
    assert len(errors) == 1 and errors[0].startswith(f"{preset}:3: invalid YAML: ")


def test_preset_uses_the_same_environment(cfg: ConfigDir, head: str, preset: Path) -> None:
    preset.write_text("admin_scope: ${PRESET_ADMIN}\n")
    assert cfg.errors(policy(head, "preset: agentos\n")) == [
        f"{preset}:1: environment variable PRESET_ADMIN is not set "
        "(use ${PRESET_ADMIN:-default} for a default)"
    ]
    assert (
        cfg.config(policy(head, "preset: agentos\n"), {"PRESET_ADMIN": "x:admin"}).policy.admin_scope
        == "x:admin"
    )


def test_missing_preset_file_is_reported_at_the_preset_line(
    cfg: ConfigDir, head: str, tmp_path: Path
) -> None:
    cfg.preset_dir = tmp_path / "none"
    missing = tmp_path / "none" / "agentos.yaml"
    assert cfg.errors(policy(head, "unmapped: deny\npreset: agentos\n")) == [
        f"config.yaml:10: policy.preset: cannot read the agentos preset {missing}: No such file or directory"
    ]


def test_packaged_agentos_preset_loads(cfg: ConfigDir, head: str) -> None:
    packaged = os.path.join(PRESET_DIR, "agentos.yaml")
    if not os.path.exists(packaged):
        pytest.fail(f"the packaged preset {packaged} is missing")
    config = cfg.config(policy(head, 'preset: agentos\nroutes:\n  "GET /agents": [mine:read]\n'))
    rules = config.policy.routes
    assert rules[-1] == RouteRule("GET /agents", ("mine:read",), "config.yaml", 11)
    fragment = os.path.join(PRESET_DIR, "agentos-mcp.yaml")  # its /mcp endpoint's transport rule
    assert all(r.file in (packaged, fragment) for r in rules[:-1]) and len(rules) > 10
    assert not any(r.key == "GET /agents" and r.file == packaged for r in rules)


def test_preset_that_is_not_utf8_is_refused(cfg: ConfigDir, head: str, preset: Path) -> None:
    preset.write_bytes(b"admin_scope: caf\xe9\n")
    assert cfg.errors(policy(head, "preset: agentos\n")) == [
        f"config.yaml:9: policy.preset: cannot read the agentos preset {preset}: not UTF-8 text"
    ]
