"""The agentos preset against Agno 3.1.10 itself: its scope table, and every route a real AgentOS serves.

Agno's effective requirement for a route is its route gate (get_default_scope_mappings, fnmatch) plus the
per-resource check some handlers add (`require_resource_access(family, action, id)`); the preset must ask
for exactly that, except where the lists below (mirrored in docs/agentos.md) say why it asks for more or
leaves the route to the admin scope.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import authproxy

pytestmark = pytest.mark.agentos

PRESET = Path(authproxy.__file__).parent / "policy" / "presets" / "agentos.yaml"

# Agno key -> the extra scopes the preset requires there, because Agno's real check reads the body or the
# database, which authproxy cannot see.
STRICTER: dict[str, set[str]] = {
    "GET /filesystem/{}": {"agents:read"},  # Agno: results narrowed to the agents the caller may read
}
# Agno key -> why the preset leaves it out (admin scope only): Agno re-checks the scheduled endpoint.
LEFT_OUT: dict[str, str] = {
    "POST /schedules": "target endpoint permission checked from the body",
    "PATCH /schedules/{}": "target endpoint permission re-checked when the target changes",
    "POST /schedules/{}/enable": "target endpoint permission re-checked from the stored schedule",
    "POST /schedules/{}/trigger": "target endpoint permission re-checked from the stored schedule",
}
# Served routes outside Agno's table that the preset still maps (Agno checks them elsewhere).
EXTRA_SERVED: dict[str, set[str]] = {"GET /workflows/ws": set()}  # any token; each message checked
# Rules that only settle a tie between two preset patterns (authproxy refuses ties), with Agno's scopes.
TIE_BREAKERS = {"GET /knowledge/content/sources": {"knowledge:read"}}


def canonical(path: str) -> str:
    """`/a/{x}/b/*` -> `/a/{}/b/{}`; a Starlette `{p:path}` or a trailing `**` -> `**`."""
    parts = []
    for part in path.strip("/").split("/"):
        if part.endswith(":path}") or part == "**":
            parts.append("**")
        elif part == "*" or re.fullmatch(r"\{[^}]+\}", part):
            parts.append("{}")
        else:
            parts.append(part)
    return "/" + "/".join(p for p in parts if p)


def a2a_scope_mappings() -> dict[str, list[str]]:
    """Agno's A2A table, loaded from its file: the package itself needs the optional a2a-sdk."""
    import importlib.util

    import agno.os

    path = Path(agno.os.__file__).parent / "interfaces" / "a2a" / "scopes.py"
    spec = importlib.util.spec_from_file_location("agno_a2a_scopes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mappings: dict[str, list[str]] = module.get_a2a_scope_mappings("/a2a")
    return mappings


def lookup(routes: dict[str, set[str]], key: str) -> tuple[str, set[str]] | None:
    """The most specific preset rule (key, scopes) matching a served route template (params as `{}`)."""
    method, path = key.split(" ", 1)
    wanted = path.strip("/").split("/")
    best: tuple[int, str] | None = None
    for rule in routes:
        rule_method, rule_path = rule.split(" ", 1)
        pattern = rule_path.strip("/").split("/")
        tail = pattern[-1] == "**"
        head = pattern[:-1] if tail else pattern
        if rule_method != method or len(wanted) < len(head) or (not tail and len(wanted) != len(head)):
            continue
        if all(p == w or (p == "{}" and w != "**") for p, w in zip(head, wanted, strict=False)):
            literals = sum(p != "{}" for p in head)
            if best is None or literals > best[0]:
                best = (literals, rule)
    return None if best is None else (best[1], routes[best[1]])


def family_scope(scope: str) -> str:
    """`agents:{agent_id}:run` -> `agents:run`: an explicit id binding asks for the same family action."""
    parts = scope.split(":")
    return f"{parts[0]}:{parts[2]}" if len(parts) == 3 and parts[1].startswith("{") else scope


@pytest.fixture(scope="module")
def preset() -> dict[str, Any]:
    with PRESET.open() as file:
        data: dict[str, Any] = yaml.safe_load(file)
    return data


@pytest.fixture(scope="module")
def preset_routes(preset: dict[str, Any]) -> dict[str, set[str]]:
    """`METHOD /canonical` -> required scopes (family form)."""
    routes: dict[str, set[str]] = {}
    for key, rule in preset["routes"].items():
        method, path = key.split(" ", 1)
        scopes = (
            rule["scopes"] if isinstance(rule, dict) else rule
        )  # the mapping form keeps them under `scopes`
        routes[f"{method} {canonical(path)}"] = {family_scope(s) for s in scopes}
    return routes


@pytest.fixture(scope="module")
def agentos_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real AgentOS with its RBAC on and the feature routers a db enables."""
    os.environ.setdefault("OPENAI_API_KEY", "sk-dummy-never-used")
    from agno.agent import Agent
    from agno.db.sqlite import SqliteDb
    from agno.os import AgentOS
    from agno.os.config import AuthorizationConfig

    db = SqliteDb(db_file=str(tmp_path_factory.mktemp("agno") / "agno.db"))
    config = AuthorizationConfig(verification_keys=["unit-test-secret-" * 4], algorithm="HS256")
    agent_os = AgentOS(
        id="unit-os",
        db=db,
        agents=[Agent(id="a", name="a", db=db)],
        telemetry=False,
        authorization=True,
        authorization_config=config,
    )
    return agent_os.get_app()


def served_routes(app: Any) -> Iterator[tuple[str, Any, Any]]:
    """(method, path template, route) for every HTTP route, WebSocket routes as GET."""
    from fastapi import routing
    from starlette.routing import WebSocketRoute

    contexts = (
        routing.iter_route_contexts(app.routes) if hasattr(routing, "iter_route_contexts") else app.routes
    )
    for route in contexts:
        original = getattr(route, "original_route", route)
        if isinstance(original, WebSocketRoute):
            yield "GET", route.path, route
            continue
        for method in sorted(route.methods or ()):
            yield method, route.path, route


def handler_scopes(route: Any) -> set[str]:
    """The `require_resource_access(family, action, id)` checks among a route's dependencies."""
    found: set[str] = set()
    dependant: Any = getattr(route, "dependant", None)
    pending = list(dependant.dependencies) if dependant is not None else []
    while pending:
        dependency = pending.pop()
        pending.extend(dependency.dependencies)
        call = dependency.call
        if call is None or not getattr(call, "__qualname__", "").startswith("require_resource_access."):
            continue
        cells = dict(
            zip(call.__code__.co_freevars, (c.cell_contents for c in call.__closure__ or ()), strict=True)
        )
        found.add(f"{cells['resource_type']}:{cells['action']}")
    return found


def agno_requirement(app: Any, method: str, template: str, route: Any) -> set[str]:
    """What Agno asks for a route: its gate on a concrete path, plus the handler's per-resource check."""
    from agno.os.scopes import get_required_scopes_for_route

    concrete = re.sub(r"\{[^}]+\}", "x", template)
    return set(get_required_scopes_for_route(app.state.scope_mappings, method, concrete)) | handler_scopes(
        route
    )


def agno_excluded_routes(app: Any) -> set[str]:
    """The paths AgentOS's installed AuthMiddleware lets through without a token."""
    from agno.os.middleware.jwt import AuthMiddleware

    for middleware in app.user_middleware:
        if isinstance(middleware.cls, type) and issubclass(middleware.cls, AuthMiddleware):
            configured = middleware.kwargs.get("excluded_route_paths")
            defaults = AuthMiddleware(None, verification_keys=["k"], algorithm="HS256").excluded_route_paths
            return set(configured if configured is not None else defaults)
    raise AssertionError("AgentOS installed no AuthMiddleware")


def test_preset_names_agno_admin_scope(preset: dict[str, Any]) -> None:
    from agno.os.scopes import AgentOSScope

    assert preset["admin_scope"] == AgentOSScope.ADMIN.value


def test_preset_public_routes_are_agno_excluded_routes(preset: dict[str, Any], agentos_app: Any) -> None:
    bare_paths = {entry for entry in preset["public"] if " " not in entry}
    assert bare_paths == agno_excluded_routes(agentos_app)
    # Agno's middleware passes every OPTIONS request (CORS preflight) without a token.
    assert set(preset["public"]) - bare_paths == {"OPTIONS /**"}


@pytest.mark.parametrize("company", [False, True])
def test_every_agno_mapping_has_a_preset_rule_with_the_same_scopes(
    preset_routes: dict[str, set[str]], company: bool
) -> None:
    from agno.os.scopes import get_default_scope_mappings

    mismatched = {}
    for key, scopes in get_default_scope_mappings(company=company).items():
        method, path = key.split(" ", 1)
        ours_key = f"{method} {canonical(path)}"
        if ours_key in LEFT_OUT or path.startswith("/company/"):
            assert ours_key not in preset_routes, f"{key} is listed as left out but the preset maps it"
            continue
        expected = set(scopes) | STRICTER.get(ours_key, set())
        if preset_routes.get(ours_key) != expected:
            mismatched[key] = (preset_routes.get(ours_key), expected)
    assert mismatched == {}


def test_every_a2a_mapping_has_a_preset_rule_with_the_same_scopes(preset_routes: dict[str, set[str]]) -> None:
    for key, scopes in a2a_scope_mappings().items():
        method, path = key.split(" ", 1)
        assert preset_routes.get(f"{method} {canonical(path)}") == set(scopes), key


def test_every_served_route_is_public_mapped_or_deliberately_left_out(
    agentos_app: Any, preset: dict[str, Any], preset_routes: dict[str, set[str]]
) -> None:
    public = {canonical(p) for p in preset["public"] if " " not in p}
    excluded = agno_excluded_routes(agentos_app)
    unexplained = {}
    seen_handler_checks = 0
    for method, template, route in served_routes(agentos_app):
        key = f"{method} {canonical(template)}"
        if canonical(template) in public:
            assert template in excluded, f"{key} is public here but not excluded by Agno"
            continue
        if key in LEFT_OUT or template.startswith("/queue"):
            assert lookup(preset_routes, key) is None, key  # /queue/** is admin-only in Agno as well
            continue
        extra = EXTRA_SERVED.get(key)
        agno = extra if extra is not None else agno_requirement(agentos_app, method, template, route)
        seen_handler_checks += bool(handler_scopes(route))
        rule, ours = lookup(preset_routes, key) or ("", None)
        if ours != agno | STRICTER.get(rule, set()):
            unexplained[key] = (ours, agno)
    assert unexplained == {}
    assert seen_handler_checks > 20  # the dependency walk still finds Agno's per-resource checks


def test_every_preset_rule_names_a_route_agno_serves_or_maps(
    agentos_app: Any, preset_routes: dict[str, set[str]]
) -> None:
    from agno.os.scopes import get_default_scope_mappings, get_required_scopes_for_route

    known = {f"{m} {canonical(t)}" for m, t, _ in served_routes(agentos_app)}
    for mapping in (get_default_scope_mappings(), a2a_scope_mappings()):
        known |= {f"{k.split(' ', 1)[0]} {canonical(k.split(' ', 1)[1])}" for k in mapping}
    assert set(preset_routes) - known == set(TIE_BREAKERS)
    for key, scopes in TIE_BREAKERS.items():
        assert (
            preset_routes[key]
            == scopes
            == set(get_required_scopes_for_route(get_default_scope_mappings(), *key.split()))
        )


@pytest.mark.parametrize("key", sorted(set(STRICTER) | set(LEFT_OUT)))
def test_documented_differences_are_listed_in_docs(key: str) -> None:
    docs = (Path(__file__).parents[3] / "docs" / "agentos.md").read_text()
    pattern = re.escape(key).replace(re.escape("{}"), r"\{[a-z_]+\}")
    assert re.search(pattern, docs), f"{key} is not named in docs/agentos.md"
