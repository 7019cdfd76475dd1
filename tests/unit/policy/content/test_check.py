"""The content plan's checks as pure functions (policy/content/check.py): what the proxied port carries out
and `explain`/`authproxy test` run, so a refusal here is the proxy's refusal."""

from __future__ import annotations

import json

import pytest

from authproxy.config.content import ContentRule, ItemScopes, OwnerLookup, Pin, ResponseCheck, parse_field
from authproxy.errors import (
    EntityForbidden,
    EntityNotFound,
    InsufficientScope,
    MalformedBody,
    MethodNotAllowed,
    NotCallersOwn,
    PayloadTooLarge,
    RequestRejected,
    UpstreamUnavailable,
)
from authproxy.policy.content.check import (
    check_answer,
    check_lookup_answer,
    check_request,
    owner_lookup,
)
from authproxy.policy.content.plan import ContentPlan

QUERY_USER = Pin(parse_field("query.user_id"), "user_id")
JSON_OWNER = Pin(parse_field("json:/owner"), "user_id")
AGENT_ITEM = ItemScopes(parse_field("json:/agent_id"), ("agents:{value}:run",))
JSON_TYPE = ("application/json",)


def plan(rule: ContentRule, *granted: str, params: tuple[tuple[str, str], ...] = ()) -> ContentPlan:
    return ContentPlan(rule, (("user_id", "alice"), ("session_id", "s9")), params, frozenset(granted))


def test_a_query_pin_naming_another_user_is_refused() -> None:
    with pytest.raises(NotCallersOwn):
        check_request(plan(ContentRule(pins=(QUERY_USER,))), "GET", "/sessions?user_id=bob", None)


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [("/sessions", "/sessions?user_id=alice"), ("/sessions?user_id=alice", "/sessions?user_id=alice")],
)
def test_a_query_pin_gives_the_target_to_forward(target: str, forwarded: str) -> None:
    assert check_request(plan(ContentRule(pins=(QUERY_USER,))), "GET", target, None) == (forwarded, None)


def test_a_body_pin_is_set_in_the_body_to_forward() -> None:
    target, body = check_request(plan(ContentRule(pins=(JSON_OWNER,))), "POST", "/n", b'{"x": 1}', JSON_TYPE)
    assert body is not None
    assert target == "/n"
    assert json.loads(body.encode()[1]) == {"x": 1, "owner": "alice"}


def test_an_unknown_body_leaves_its_checks_out() -> None:
    """explain without --body: the body's checks are pending, not run on an empty body."""
    assert check_request(plan(ContentRule(pins=(JSON_OWNER,))), "POST", "/n", None) == ("/n", None)


@pytest.mark.parametrize(
    ("data", "types", "encodings", "refused"),
    [
        (b'{"owner": "bob"}', JSON_TYPE, (), NotCallersOwn),
        (b"{not json", JSON_TYPE, (), MalformedBody),
        (b'{"owner": "alice"}', (), (), MalformedBody),  # no media type: the reader says what it needs
        (b'{"owner": "alice"}', ("application/json", "text/plain"), (), MalformedBody),
        (b'{"owner": "alice"}', JSON_TYPE, ("gzip",), MalformedBody),
        (b'{"owner": "' + b"x" * 64 + b'"}', JSON_TYPE, (), PayloadTooLarge),
        (b'{"agent_id": "a2"}', JSON_TYPE, (), InsufficientScope),
        (b'{"agent_id": "a:b"}', JSON_TYPE, (), MalformedBody),
    ],
)
def test_a_body_the_rule_cannot_accept_is_refused(
    data: bytes, types: tuple[str, ...], encodings: tuple[str, ...], refused: type[RequestRejected]
) -> None:
    rule = ContentRule(pins=(JSON_OWNER,), items=(AGENT_ITEM,), max_body=64)
    with pytest.raises(refused):
        check_request(plan(rule, "agents:a1:run"), "POST", "/evals", data, types, encodings)


def test_an_item_scope_names_what_is_missing() -> None:
    rule = ContentRule(items=(AGENT_ITEM,))
    with pytest.raises(InsufficientScope) as refused:
        check_request(plan(rule, "agents:a1:run"), "POST", "/evals", b'{"agent_id": "a2"}', JSON_TYPE)
    assert (refused.value.required, refused.value.missing) == (("agents:a2:run",), ("agents:a2:run",))


def test_head_on_a_response_checked_route_is_refused() -> None:
    rule = ContentRule(response=(ResponseCheck(parse_field("json:/user_id"), "user_id"),))
    with pytest.raises(MethodNotAllowed):
        check_request(plan(rule), "HEAD", "/entity/e1", None)


CANCEL = ContentRule(
    owner=OwnerLookup(
        "/sessions/{query.session_id}/runs/{run_id}?user_id={caller.user_id}",
        ((parse_field("json:/agent_id"), "{agent_id}"),),
    )
)
PARAMS = (("agent_id", "a1"), ("run_id", "r 1"))


def test_the_owner_lookup_is_filled_from_the_path_the_query_and_the_caller() -> None:
    lookup = owner_lookup(plan(CANCEL, params=PARAMS), "/agents/a1/runs/r%201/cancel?session_id=s1", None)
    assert lookup is not None
    assert lookup.target == "/sessions/s1/runs/r%201?user_id=alice"
    assert (
        lookup.describe() == "GET /sessions/s1/runs/r%201?user_id=alice expects 200 with json:/agent_id = a1"
    )


@pytest.mark.parametrize("query", ["", "?session_id=", "?session_id=s1&session_id=s2"])
def test_an_owner_lookup_missing_its_query_field_is_refused(query: str) -> None:
    with pytest.raises(MalformedBody):
        owner_lookup(plan(CANCEL, params=PARAMS), f"/agents/a1/runs/r1/cancel{query}", None)


@pytest.mark.parametrize(
    ("status", "answer", "refused"),
    [
        (200, b'{"agent_id": "a1"}', None),
        (200, b'{"agent_id": "a2"}', EntityNotFound),
        (404, b"{}", EntityNotFound),
        (500, b"down", UpstreamUnavailable),
        (200, b"not json", UpstreamUnavailable),
    ],
)
def test_the_owner_lookups_answer_decides(
    status: int, answer: bytes, refused: type[Exception] | None
) -> None:
    lookup = owner_lookup(plan(CANCEL, params=PARAMS), "/x?session_id=s1", None)
    assert lookup is not None
    if refused is None:
        check_lookup_answer(lookup, status, answer)
        return
    with pytest.raises(refused):
        check_lookup_answer(lookup, status, answer)


def test_an_owner_lookup_may_answer_403() -> None:
    rule = ContentRule(owner=OwnerLookup("/things/{id}", (), 403))
    lookup = owner_lookup(plan(rule, params=(("id", "t1"),)), "/things/t1", None)
    assert lookup is not None
    with pytest.raises(EntityForbidden):
        check_lookup_answer(lookup, 404, b"")


@pytest.mark.parametrize(
    ("status", "answer", "refused"),
    [
        (200, b'{"user_id": "alice"}', None),
        (200, b'{"user_id": "bob"}', EntityNotFound),
        (200, b"{}", EntityNotFound),
        (404, b"not json either", None),  # only a 2xx carries the entity
        (201, b"<html>", UpstreamUnavailable),
    ],
)
def test_the_response_check(status: int, answer: bytes, refused: type[Exception] | None) -> None:
    rule = ContentRule(response=(ResponseCheck(parse_field("json:/user_id"), "user_id"),))
    if refused is None:
        check_answer(plan(rule), status, answer)
        return
    with pytest.raises(refused):
        check_answer(plan(rule), status, answer)
