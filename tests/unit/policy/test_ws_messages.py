"""Per-message check of the workflow WebSocket: grants and verdicts, grants measured against Agno 3.1.10."""

from __future__ import annotations

import json

import pytest

from authproxy.policy.ws_messages import DROP, MessageGrant, Verdict, judge_message, workflow_grant

ADMIN = "agent_os:admin"
RUN = "Insufficient permissions to run this workflow"
RECONNECT = "Insufficient permissions to reconnect to this workflow"
CONTINUE = "Insufficient permissions to continue this workflow"
ONLY_W1 = MessageGrant(frozenset({"w1"}))


def frame(**fields: object) -> str:
    return json.dumps(fields)


def canonical(message: str) -> str:
    """What the upstream receives of an allowed message: the proxy's own compact encoding."""
    return json.dumps(json.loads(message), separators=(",", ":"), ensure_ascii=False)


def refusal(text: str) -> str:
    return '{"event": "error", "error": "' + text + '"}'  # Agno's json.dumps, default separators


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        (frame(action="start-workflow", workflow_id="w1", message="hi"), None),
        (frame(action="start-workflow", workflow_id="w2"), RUN),
        (frame(action="start-workflow"), RUN),  # no id: only family-wide grants pass
        (frame(action="start-workflow", workflow_id=""), RUN),
        (frame(action="start-workflow", workflow_id=["w1"]), RUN),
        (frame(action="reconnect", workflow_id="w2", run_id="r"), RECONNECT),
        (frame(action="reconnect", workflow_id="w1", run_id="r"), None),
        (frame(action="continue-workflow", workflow_id="w2", run_id="r"), CONTINUE),
        (frame(action="continue-workflow", workflow_id="w1", run_id="r"), None),
        (frame(action="authenticate", token="t"), None),
        (frame(action="ping"), None),
        (frame(action="something-else", workflow_id="w2"), None),  # Agno answers "Unknown action" itself
        (frame(action=["start-workflow"], workflow_id="w2"), None),
        (frame(action=None), None),
    ],
)
def test_per_item_grant_judges_each_message(message: str, reply: str | None) -> None:
    verdict = judge_message(message, ONLY_W1)
    if reply is None:
        assert verdict == Verdict(canonical(message))  # re-encoded, never the client's text
    else:
        assert verdict == Verdict(None, refusal(reply), json.loads(message)["action"])


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '"start-workflow"',
        "7",
        "null",
        "",
        # readings that could differ from the upstream's: a repeated key (first or last wins), NaN, depth
        '{"action": "start-workflow", "workflow_id": "w1", "workflow_id": "w2"}',
        '{"action": "ping", "n": NaN}',
        '{"action": "ping", "n": ' + "[" * 1500 + "]" * 1500 + "}",
    ],
)
def test_a_frame_agno_cannot_read_drops_the_connection(text: str) -> None:
    assert judge_message(text, ONLY_W1) == DROP
    assert judge_message(text, MessageGrant(None)) == DROP


def test_a_whole_family_grant_forwards_every_readable_message() -> None:
    everything = MessageGrant(None)
    for action in ("start-workflow", "reconnect", "continue-workflow"):
        for message in (frame(action=action), frame(action=action, workflow_id="any")):
            assert judge_message(message, everything) == Verdict(canonical(message))


WORKFLOWS = ["w1", "w2", "", "a:b"]
GRANTS = [
    [ADMIN],
    ["workflows:run"],
    ["workflows:*:run"],
    ["workflows:w1:run"],
    ["workflows:w1:read", "workflows:read", "workflows:w2:write"],
    ["workflows:a:b:run"],
    [],
]


@pytest.mark.agentos
@pytest.mark.parametrize("granted", GRANTS, ids=[" ".join(g) or "none" for g in GRANTS])
def test_grant_allows_the_workflows_agno_allows(granted: list[str]) -> None:
    from agno.os.scopes import has_required_scopes

    grant = workflow_grant(granted, ADMIN)
    for workflow_id in [*WORKFLOWS, None]:
        # Agno's WebSocket gate: POST /workflows/{id}/runs's scopes, resource context = the message's id
        agno = has_required_scopes(
            granted, ["workflows:run"], resource_type="workflows", resource_id=workflow_id, admin_scope=ADMIN
        )
        message = frame(action="start-workflow", workflow_id=workflow_id)
        assert (judge_message(message, grant).send is not None) == agno, (workflow_id, grant)


@pytest.mark.agentos
def test_a_scope_with_an_empty_id_grants_nothing_where_agno_reads_it_family_wide() -> None:
    from agno.os.scopes import has_required_scopes

    assert has_required_scopes(["workflows::run"], ["workflows:run"], "workflows", "w1", ADMIN)
    assert workflow_grant(["workflows::run"], ADMIN) == MessageGrant(frozenset())  # stricter, as on REST


@pytest.mark.parametrize(
    ("admin", "sent", "forwarded"),
    [
        (False, {"user_id": "mallory"}, "alice"),  # a caller cannot attribute a run to someone else
        (False, {}, "alice"),
        (False, {"user_id": None}, "alice"),
        (True, {"user_id": "bob"}, "bob"),  # an admin may act for another user
        (True, {}, "alice"),
        (True, {"user_id": None}, None),  # Agno: setdefault keeps a present key
    ],
)
def test_allowed_messages_carry_the_callers_user_id_as_agno_pins_it(
    admin: bool, sent: dict[str, object], forwarded: str | None
) -> None:
    grant = MessageGrant(frozenset({"w1"}) if not admin else None, "alice", admin)
    for action in ("start-workflow", "reconnect", "continue-workflow"):
        verdict = judge_message(frame(action=action, workflow_id="w1", **sent), grant)
        assert verdict.send is not None
        assert json.loads(verdict.send) == {"action": action, "workflow_id": "w1", "user_id": forwarded}


def test_messages_already_carrying_the_subject_and_other_actions_keep_their_fields() -> None:
    grant = MessageGrant(None, "alice")
    for message in (
        '{"action": "start-workflow", "workflow_id": "w1", "user_id": "alice"}',
        '{"action": "ping", "user_id": "mallory"}',
    ):
        assert judge_message(message, grant) == Verdict(canonical(message))
    subjectless = MessageGrant(None)
    message = frame(action="start-workflow", workflow_id="w1", user_id="anyone")
    assert judge_message(message, subjectless) == Verdict(canonical(message))  # Agno pins only to a subject


def test_grant_describes_itself_for_explain() -> None:
    assert workflow_grant(["workflows:w2:run", "workflows:w1:run"], ADMIN).describe() == (
        "workflows:run limited to: w1 w2"
    )
    assert workflow_grant([ADMIN], ADMIN).describe() == "workflows:run on every workflow"
    assert workflow_grant([], ADMIN).describe() == "workflows:run limited to: (nothing)"
