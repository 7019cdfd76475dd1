"""A route condition that reads `body`: judged by the content stage on the body as the upstream receives it
(pins held), for the admin scope too; a route whose body nobody reads cannot carry one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from authproxy.config import load_text
from authproxy.errors import ConditionFailed, ConfigError
from authproxy.gate import authorize
from authproxy.policy.content.check import check_request
from authproxy.policy.content.fields import Body
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.decision import Decision
from authproxy.runtime import Runtime, build_runtime, load_runtime
from tests.rigs.config import hs256_head
from tests.rigs.keys import Mint

CONFIG = (
    hs256_head("body-when")
    + """\
policy:
  admin_scope: ops:admin
  routes:
    "POST /payments": {{scopes: [pay], when: "body.amount <= 1000 && claims.sub == 'alice'"}}
    "POST /notes": {{scopes: [pay], pin: {{json:/owner: user_id}}, when: "body.owner == 'alice'"}}
    "POST /forms": {{scopes: [pay], when: "body.tag == ['a', 'b']"}}
"""
)
JSON = "application/json"


@pytest.fixture
def rt(hs_secret: bytes) -> Runtime:
    return build_runtime(load_text(CONFIG.format(secret=hs_secret.decode()), "body.yaml"))


async def allowed(rt: Runtime, mint: Mint, target: str, *scopes: str, sub: str = "alice") -> Decision:
    token = mint({"sub": sub, "aud": "body-when", "scopes": list(scopes)})
    decision = await authorize(rt, "POST", target, CIMultiDict({"Authorization": f"Bearer {token}"}))
    assert decision.allowed
    return decision


def plan_of(decision: Decision) -> ContentPlan:
    assert isinstance(decision.stage, ContentPlan)
    return decision.stage


async def test_the_gate_leaves_a_body_condition_to_the_content_stage(rt: Runtime, mint: Mint) -> None:
    decision = await allowed(rt, mint, "/payments", "pay")
    assert decision.condition is None
    plan = plan_of(decision)
    assert plan.reads_body
    assert plan.when is not None
    assert list(plan.when.variables) == ["claims"]  # built by the gate; `body` is added once it is read
    assert plan.when.variables["claims"]["sub"] == "alice"
    assert "when body.amount <= 1000" in plan.describe()
    check_request(plan, "POST", "/payments", b'{"amount": 10}', [JSON])
    with pytest.raises(ConditionFailed) as refused:
        check_request(plan, "POST", "/payments", b'{"amount": 1001}', [JSON])
    assert refused.value.value == "false"
    with pytest.raises(ConditionFailed):
        check_request(plan, "POST", "/payments", b"[1, 2]", [JSON])


@pytest.mark.parametrize("sub", ["alice", "root"])
async def test_the_admin_scope_skips_content_rules_but_not_the_condition(
    rt: Runtime, mint: Mint, sub: str
) -> None:
    plan = plan_of(await allowed(rt, mint, "/payments", "ops:admin", sub=sub))
    assert not plan.rule.pins
    if sub == "alice":
        check_request(plan, "POST", "/payments", b'{"amount": 10}', [JSON])
    with pytest.raises(ConditionFailed):
        check_request(plan, "POST", "/payments", b'{"amount": 5000}', [JSON])


async def test_the_condition_sees_the_body_after_its_pins(rt: Runtime, mint: Mint) -> None:
    plan = plan_of(await allowed(rt, mint, "/notes", "pay"))
    _, body = check_request(plan, "POST", "/notes", b'{"text": "x"}', [JSON])
    assert body is not None
    assert json.loads(body.encode()[1]) == {"text": "x", "owner": "alice"}


async def test_a_form_is_read_as_lists_of_values(rt: Runtime, mint: Mint) -> None:
    plan = plan_of(await allowed(rt, mint, "/forms", "pay"))
    form = "application/x-www-form-urlencoded"
    check_request(plan, "POST", "/forms", b"tag=a&tag=b", [form])
    with pytest.raises(ConditionFailed):
        check_request(plan, "POST", "/forms", b"tag=a", [form])


@pytest.mark.parametrize(
    ("data", "content_type", "value"),
    [
        (b'{"a": [1, {"b": null}]}', JSON, {"a": [1, {"b": None}]}),
        (b"a=1&a=2&b=", "application/x-www-form-urlencoded", {"a": ["1", "2"], "b": [""]}),
    ],
)
def test_the_body_value_a_condition_reads(data: bytes, content_type: str, value: Any) -> None:
    assert Body(data, content_type).value() == value


def test_a_body_condition_cannot_stand_on_an_mcp_endpoint(tmp_path: Path, hs_secret: bytes) -> None:
    text = CONFIG.format(secret=hs_secret.decode()) + (
        '    "GET,POST,DELETE /mcp": {scopes: [], when: "body.method == \'ping\'"}\n'
        "mcp:\n  endpoints:\n    /mcp:\n      tools: {whoami: []}\n"
    )
    path = tmp_path / "mcp.yaml"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match="its condition on the body cannot run where the MCP endpoint checks"
    ):
        load_runtime(path)
