"""Property: for any message and any scopes, the workflow WebSocket lets a message through exactly when
Agno 3.1.10's own WebSocket gate would (has_required_scopes on the message's workflow id), and a refused
message is never forwarded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authproxy.policy.ws_messages import judge_message, workflow_grant

pytestmark = pytest.mark.agentos

ADMIN = "agent_os:admin"
IDS = st.sampled_from(["w1", "w2", "W1", "w1 ", "*", "a:b", "ü"]) | st.text(max_size=6)
SCOPES = st.lists(
    st.sampled_from([ADMIN, "workflows:run", "workflows:*:run", "workflows:read", "agents:run"])
    | st.builds(
        lambda i, a: f"workflows:{i}:{a}", IDS.filter(lambda i: i != ""), st.sampled_from(["run", "read"])
    ),
    max_size=4,
)
JSON_VALUES = st.none() | st.booleans() | st.integers() | IDS | st.lists(IDS, max_size=2)
MESSAGES = st.fixed_dictionaries(
    {"action": st.sampled_from(["start-workflow", "reconnect", "continue-workflow"])},
    optional={"workflow_id": JSON_VALUES, "user_id": JSON_VALUES, "message": st.text(max_size=5)},
)


@settings(max_examples=400, deadline=None)
@given(scopes=SCOPES, message=MESSAGES)
def test_a_message_passes_exactly_when_agno_would_let_it(scopes: list[str], message: dict[str, Any]) -> None:
    from agno.os.scopes import has_required_scopes

    workflow_id = message.get("workflow_id")
    agno = has_required_scopes(scopes, ["workflows:run"], "workflows", workflow_id, ADMIN)
    verdict = judge_message(json.dumps(message), workflow_grant(scopes, ADMIN, "alice"))
    assert (verdict.send is not None) == agno
    assert (verdict.reply is not None) == (not agno)  # a refusal is answered, never forwarded
    if verdict.send is not None:
        forwarded = json.loads(verdict.send)
        assert {k: v for k, v in forwarded.items() if k != "user_id"} == {
            k: v for k, v in message.items() if k != "user_id"
        }
