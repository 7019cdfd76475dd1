"""A tool rule's `when` in the MCP message checks (proxy/mcp/messages.py): judged after the scopes and pins,
on the arguments as the upstream receives them, for the admin scope too; refused in JSON-RPC's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authproxy.errors import ConditionFailed, ConfigError, InsufficientScope
from authproxy.policy.mcp.endpoints import McpPolicy
from authproxy.proxy.mcp.messages import Caller
from authproxy.runtime import load_runtime
from tests.rigs.config import hs256_head
from tests.rigs.mcp_checks import checked_post, load_mcp_policy, tool_call

CONFIG = (
    hs256_head()
    + """\
policy:
  admin_scope: ops:admin
  routes:
    "GET /health": []
mcp:
  endpoints:
    /mcp:
      tools:
        migrate: {{scopes: [db:write], when: "tool.arguments.dry_run == true"}}
        mine: {{scopes: [], pin: {{owner: user_id}}, when: "tool.arguments.owner == claims.sub"}}
        purge: deny
"""
)
WRITER = Caller(frozenset({"db:write"}), "alice", None, {"sub": "alice"})
ADMIN = Caller(frozenset({"ops:admin"}), "root", None, {"sub": "root"})


@pytest.fixture
def policy(tmp_path: Path) -> McpPolicy:
    return load_mcp_policy(tmp_path, CONFIG.format(secret="s" * 40))


call = tool_call


def post(policy: McpPolicy, document: Any, caller: Caller = WRITER) -> Any:
    return checked_post(policy, document, caller)


@pytest.mark.parametrize("caller", [WRITER, ADMIN])
def test_a_call_runs_only_when_its_condition_is_true(policy: McpPolicy, caller: Caller) -> None:
    assert post(policy, call(1, "migrate", dry_run=True), caller)["params"]["arguments"] == {"dry_run": True}
    for arguments in ({"dry_run": False}, {}, {"dry_run": "true"}):
        with pytest.raises(ConditionFailed) as refused:
            post(policy, call(7, "migrate", **arguments), caller)
        assert refused.value.body == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {
                "code": -32003,
                "message": "a condition of this rule is not met",
                "data": {
                    "error": "condition_failed",
                    "tool": "migrate",
                    "reason": "a condition of this rule is not met",
                },
            },
            "detail": "a condition of this rule is not met",
        }
        assert refused.value.condition.startswith("tool.arguments.dry_run == true (")


def test_the_condition_sees_the_pinned_arguments(policy: McpPolicy) -> None:
    assert post(policy, call(1, "mine"))["params"]["arguments"] == {"owner": "alice"}


def test_a_batch_refused_for_scopes_answers_as_a_scope_refusal(policy: McpPolicy) -> None:
    with pytest.raises(InsufficientScope) as refused:
        post(policy, [call(1, "migrate", dry_run=False), call(2, "purge")])
    errors = refused.value.body
    assert isinstance(errors, list)
    assert [e["error"]["data"]["error"] for e in errors] == ["condition_failed", "insufficient_scope"]


def test_a_batch_refused_by_a_condition_alone_says_so_for_every_call(policy: McpPolicy) -> None:
    with pytest.raises(ConditionFailed) as refused:
        post(policy, [call(1, "migrate", dry_run=True), call(2, "migrate")])
    errors = refused.value.body
    assert isinstance(errors, list)
    assert [e["error"]["data"]["error"] for e in errors] == ["condition_failed", "condition_failed"]
    assert errors[0]["error"]["message"] == "not run: another call in this batch was refused"


def test_a_tool_condition_reads_no_request_variables(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text(
        CONFIG.format(secret="s" * 40).replace("tool.arguments.dry_run == true", "request.method == 'POST'")
    )
    with pytest.raises(
        ConfigError, match=r"mcp\.yaml:15: .*when: column \d+: undeclared reference to 'request\.method'"
    ):
        load_runtime(path)
