"""A route's `when`: compiled at load (FILE:LINE), judged by the gate right after the scopes hold, the admin
scope included, and refused (403 condition_failed) on anything but true."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from authproxy.cli.main import main
from authproxy.config import load_text
from authproxy.config.conditions import Condition
from authproxy.errors import ConditionFailed, ConfigError
from authproxy.gate import authorize
from authproxy.policy.conditions import REFUSED, request_variables
from authproxy.policy.decision import Decision
from authproxy.runtime import Runtime, build_runtime
from tests.rigs.config import hs256_head
from tests.rigs.keys import Bearer, Mint, bearer_headers

AUDIENCE = "when-test"
CONFIG = (
    hs256_head("{audience}", upstream="http://127.0.0.1:7777")
    + """\
policy:
  admin_scope: proxy:admin
  routes:
{routes}"""
)
ROUTES = """\
"GET /tenants/{tenant}/reports": {scopes: [reports:read], when: "claims.tenant == params.tenant"}
"* /orders/**": {scopes: [], when: "!('read-only' in claims.roles) || request.method == 'GET'"}
"GET /flag": {scopes: [], when: "claims.flag"}
"GET /vars":
  scopes: []
  when: >-
    request.path == '/vars' && request.query['a'] == ['1', '']
    && request.headers['x-team'] == ['red', 'blue']
"GET /plain": [reports:read]
"""


def config_text(secret: bytes, routes: str = ROUTES) -> str:
    indented = textwrap.indent(routes, "    ")
    return CONFIG.format(secret=secret.decode(), audience=AUDIENCE, routes=indented)


@pytest.fixture
def rt(hs_secret: bytes) -> Runtime:
    return build_runtime(load_text(config_text(hs_secret), "when.yaml"))


@pytest.fixture
def bearer(mint: Mint) -> Bearer:
    return bearer_headers(mint, AUDIENCE)


async def decide(rt: Runtime, method: str, target: str, headers: CIMultiDict[str]) -> Decision:
    return await authorize(rt, method, target, headers)


def _refused(decision: Decision, value: str) -> None:
    assert (decision.allowed, decision.error, decision.reason) == (False, ConditionFailed.code, REFUSED)
    assert decision.condition is not None
    assert (decision.condition.value, decision.condition.passed) == (value, False)


async def test_the_tenant_of_the_token_is_the_tenant_of_the_path(rt: Runtime, bearer: Any) -> None:
    allowed = await decide(rt, "GET", "/tenants/acme/reports", bearer("reports:read", tenant="acme"))
    assert allowed.allowed
    assert allowed.condition is not None
    assert allowed.condition.condition == "claims.tenant == params.tenant (when.yaml:11)"
    assert allowed.condition.value == "true"
    denied = await decide(rt, "GET", "/tenants/acme/reports", bearer("reports:read", tenant="other"))
    _refused(denied, "false")
    assert (denied.route, denied.subject, denied.required_scopes) == (
        "GET /tenants/{tenant}/reports",
        "alice",
        ("reports:read",),
    )


async def test_scopes_are_judged_first(rt: Runtime, bearer: Any) -> None:
    denied = await decide(rt, "GET", "/tenants/acme/reports", bearer(tenant="acme"))
    assert denied.error == "insufficient_scope"
    assert denied.condition is None


async def test_the_admin_scope_does_not_bypass_a_condition(rt: Runtime, bearer: Any) -> None:
    denied = await decide(rt, "GET", "/tenants/acme/reports", bearer("proxy:admin", tenant="other"))
    _refused(denied, "false")
    allowed = await decide(rt, "GET", "/tenants/acme/reports", bearer("proxy:admin", tenant="acme"))
    assert allowed.allowed


async def test_a_missing_claim_is_a_refusal(rt: Runtime, bearer: Any) -> None:
    _refused(
        await decide(rt, "GET", "/tenants/acme/reports", bearer("reports:read")),
        'error: key not found in map: "tenant"',
    )


@pytest.mark.parametrize("flag", ["yes", 1, None, ["x"]])
async def test_a_result_that_is_not_a_boolean_is_a_refusal(rt: Runtime, bearer: Any, flag: object) -> None:
    decision = await decide(rt, "GET", "/flag", bearer(flag=flag))
    assert decision.error == ConditionFailed.code
    assert decision.condition is not None
    assert decision.condition.value.startswith("error: ")


async def test_a_true_claim_passes(rt: Runtime, bearer: Any) -> None:
    assert (await decide(rt, "GET", "/flag", bearer(flag=True))).allowed
    _refused(await decide(rt, "GET", "/flag", bearer(flag=False)), "false")


@pytest.mark.parametrize(("method", "allowed"), [("GET", True), ("POST", False), ("DELETE", False)])
async def test_a_read_only_role_may_only_get(rt: Runtime, bearer: Any, method: str, allowed: bool) -> None:
    decision = await decide(rt, method, "/orders/7", bearer(roles=["read-only"]))
    assert decision.allowed is allowed
    writer = await decide(rt, method, "/orders/7", bearer(roles=["writer"]))
    assert writer.allowed


async def test_path_query_and_headers_are_reachable(rt: Runtime, bearer: Any) -> None:
    headers = bearer()
    headers.add("X-Team", "red")
    headers.add("x-team", "blue")
    assert (await decide(rt, "GET", "/vars?a=1&a=", headers)).allowed
    _refused(await decide(rt, "GET", "/vars?a=1", headers), "false")


async def test_a_route_without_a_condition_judges_none(rt: Runtime, bearer: Any) -> None:
    decision = await decide(rt, "GET", "/plain", bearer("reports:read"))
    assert decision.allowed
    assert decision.condition is None


def _condition(rt: Runtime, route: str) -> Condition:
    found = next(r.when for r in rt.config.policy.routes if r.key == route)
    assert found is not None
    return found


def test_only_the_variables_read_are_built(rt: Runtime) -> None:
    headers = [("X-Team", "red")]
    args: tuple[Any, ...] = (
        {"tenant": "a", "sub": "x"},
        "GET",
        ("t", "a"),
        "q=1",
        headers,
        (("tenant", "a"),),
    )
    tenant = request_variables(_condition(rt, "GET /tenants/{tenant}/reports"), *args)
    assert tenant == {"claims": {"tenant": "a", "sub": "x"}, "params": {"tenant": "a"}}
    every = request_variables(_condition(rt, "GET /vars"), *args)
    assert every == {
        "request.path": "/t/a",
        "request.query": {"q": ["1"]},
        "request.headers": {"x-team": ["red"]},
    }


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ('claims.x + 1 == "a"', "found no matching overload for '_==_' applied to '(int, string)'"),
        ("tenant == params.tenant", "column 1: undeclared reference to 'tenant'"),
        ("claims.tenant ==", "column 17: Syntax error"),
        ("request.method", "the condition must be a boolean, but it is of type string"),
    ],
)
def test_a_bad_condition_is_file_line(hs_secret: bytes, when: str, message: str) -> None:
    routes = f'"GET /a":\n  scopes: []\n  when: {when!r}\n'
    with pytest.raises(ConfigError) as bad:
        load_text(config_text(hs_secret, routes), "bad.yaml")
    [problem] = bad.value.problems
    assert str(problem).startswith('bad.yaml:13: policy.routes["GET /a"].when: ')
    assert message in problem.message


def test_check_exits_non_zero_on_a_bad_condition(
    tmp_path: Path, hs_secret: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(config_text(hs_secret, '"GET /a": {scopes: [], when: "claims.tenant =="}\n'))
    assert main(["check", "-c", str(path)]) == 1
    assert f"{path}:11: policy.routes" in capsys.readouterr().out
    path.write_text(config_text(hs_secret, '"GET /a": {scopes: [], when: "claims.tenant == \'a\'"}\n'))
    assert main(["check", "-c", str(path)]) == 0
