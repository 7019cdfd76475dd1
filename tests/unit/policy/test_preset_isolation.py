"""The isolation fragment against Agno 3.1.10's own code: every router endpoint that scopes data to the
caller (calls a `user_scope` helper) has an isolation rule, or is listed below with the reason none is
needed; every fragment rule keeps the preset's scopes unless it leaves the route to the admin scope.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import authproxy

pytestmark = pytest.mark.agentos

PRESETS = Path(authproxy.__file__).parent / "policy" / "presets"
ADMIN = "agent_os:admin"
SCOPING_HELPERS = (
    "get_scoped_user_id",
    "resolve_db_and_scope",
    "apply_scope_to_kwargs",
    "enforce_owner_on_entity",
    "assert_session_writable",
    "verify_run_in_session",
)
# Endpoints that call a helper but need no isolation rule, with the reason.
NO_RULE_NEEDED = {
    "GET /agents": "scopes registry-stored components only; code-defined agents are listed for everyone",
    "GET /agents/{}": "as GET /agents",
    "GET /teams": "as GET /agents",
    "GET /teams/{}": "as GET /agents",
    "GET /workflows": "as GET /agents",
    "GET /workflows/{}": "as GET /agents",
    "POST /eval-runs": "the preset's per-target rule stays; eval runs are read by admins only",
    "GET /knowledge/config": "knowledge configuration, not per-user content",
    "POST /schedules": "left to the admin scope by the preset",
    "PATCH /schedules/{}": "left to the admin scope by the preset",
    "POST /schedules/{}/enable": "left to the admin scope by the preset",
    "POST /schedules/{}/trigger": "left to the admin scope by the preset",
    "GET /service-accounts": "service-account tokens are not usable behind authproxy (docs/agentos.md)",
    "DELETE /service-accounts/{}": "as GET /service-accounts",
}
NOT_IN_PRESET = ("/company/", "/sources", "/routines", "/tasks", "/runs/", "/attention")  # admin only


def canonical(key: str) -> str:
    method, path = key.split(" ", 1)
    path = re.sub(r"\{[^}]*:path\}", "**", path)
    return f"{method} " + re.sub(r"\{[^}]+\}", "{}", path)


def scoping_endpoints() -> set[str]:
    import agno.os

    routers = Path(agno.os.__file__).parent / "routers"
    found: set[str] = set()
    for file in routers.rglob("*.py"):
        source = file.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = ast.get_source_segment(source, node) or ""
            if not any(helper in body for helper in SCOPING_HELPERS):
                continue
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Attribute)
                    and deco.func.attr in ("get", "post", "patch", "delete", "put")
                    and deco.args
                    and isinstance(deco.args[0], ast.Constant)
                ):
                    found.add(canonical(f"{deco.func.attr.upper()} {deco.args[0].value!s}"))
    return found


def rules(name: str) -> dict[str, list[str]]:
    data = yaml.safe_load((PRESETS / name).read_text())
    return {
        canonical(key): (value["scopes"] if isinstance(value, dict) else value)
        for key, value in data["routes"].items()
    }


def test_every_scoping_endpoint_has_an_isolation_rule() -> None:
    fragment = rules("agentos-isolation.yaml")
    endpoints = {e for e in scoping_endpoints() if not e.split(" ", 1)[1].startswith(NOT_IN_PRESET)}
    assert len(endpoints) > 60  # the scan found Agno's routers
    missing = sorted(e for e in endpoints if e not in fragment and e not in NO_RULE_NEEDED)
    assert missing == []


def test_fragment_keeps_the_presets_scopes_or_leaves_the_route_to_admins() -> None:
    preset, fragment = rules("agentos.yaml"), rules("agentos-isolation.yaml")
    for key, scopes in fragment.items():
        assert key in preset, key
        assert scopes in (preset[key], [ADMIN]), key
