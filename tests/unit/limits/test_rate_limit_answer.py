"""The answer to a rate-limit denial, as answers/table.py renders it for the proxy and `authproxy test`."""

from __future__ import annotations

import json

import pytest

from authproxy.answers.table import render_decision
from authproxy.config.limits import parse_rate
from authproxy.errors import DenialCode
from authproxy.limits.headers import allowed_fields
from authproxy.policy.decision import Decision
from authproxy.policy.rate_limit import AppliedLimit, RateLimitState

DEFAULT = AppliedLimit("default", parse_rate("600/min"))
RUNS = AppliedLimit("POST /agents/{agent_id}/runs", parse_rate("10/min", 3))


def refused(state: RateLimitState, error: DenialCode = "rate_limited") -> Decision:
    return Decision(allowed=False, error=error, reason="refused", route=RUNS.name, rate_limit=state)


@pytest.mark.parametrize(("wait", "seconds"), [(0.2, 1), (5.0, 5), (5.01, 6), (1199.5, 1200)])
def test_429_carries_retry_after_rounded_up_and_both_ratelimit_fields(wait: float, seconds: int) -> None:
    state = RateLimitState("user_id", "alice", (DEFAULT, RUNS), (512, 0), 1, wait)
    rendered = render_decision(refused(state))
    assert rendered.status == 429
    assert rendered.headers == (
        ("Content-Type", "application/json"),
        ("Server", "authproxy"),
        ("Retry-After", str(seconds)),
        ("RateLimit-Policy", '"default";q=600;w=60, "POST /agents/{agent_id}/runs";q=10;w=60'),
        ("RateLimit", f'"POST /agents/{{agent_id}}/runs";r=0;t={seconds}'),
    )
    assert json.loads(rendered.body) == {
        "detail": "refused",
        "error": "rate_limited",
        "limit": RUNS.name,
        "retry_after": seconds,
    }


def test_limit_names_are_escaped_as_structured_field_strings() -> None:
    odd = AppliedLimit('GET /a"b\\c/ü', parse_rate("1/s"))
    rendered = render_decision(refused(RateLimitState("user_id", "u", (odd,), (0,), 0, 0.5)))
    headers = dict(rendered.headers)
    assert headers["RateLimit-Policy"] == '"GET /a\\"b\\\\c/?";q=1;w=1'
    assert headers["RateLimit"] == '"GET /a\\"b\\\\c/?";r=0;t=1'


def test_a_failed_store_answers_503_without_ratelimit_fields() -> None:
    state = RateLimitState("user_id", "alice", (DEFAULT, RUNS), backend_error=True)
    rendered = render_decision(refused(state, "rate_limit_unavailable"))
    assert rendered.status == 503
    assert rendered.headers == (
        ("Content-Type", "application/json"),
        ("Server", "authproxy"),
        ("Retry-After", "1"),
    )
    assert json.loads(rendered.body) == {
        "detail": "refused",
        "error": "rate_limit_unavailable",
        "retry_after": 1,
    }


def test_decision_log_fields() -> None:
    assert RateLimitState("user_id", "a", (RUNS,), (0,), 0, 5.4321).log_fields() == {
        "rate_limit": RUNS.name,
        "retry_after_s": 5.432,
    }
    assert RateLimitState("user_id", "a", (RUNS,), backend_error=True).log_fields() == {
        "rate_limit_error": "backend unavailable"
    }
    assert RateLimitState("user_id", "a", (RUNS,), (2,)).log_fields() == {}


def test_an_allowed_answer_names_every_limit_with_what_is_left_and_when_it_is_full_again() -> None:
    # 600/min refills 10 a second: 512 left of 600 is full in 8.8 s; 10/min burst 3 with 1 left, in 12 s
    state = RateLimitState("user_id", "alice", (DEFAULT, RUNS), (512, 1))
    assert allowed_fields(state) == (
        ("RateLimit-Policy", '"default";q=600;w=60, "POST /agents/{agent_id}/runs";q=10;w=60'),
        ("RateLimit", '"default";r=512;t=9, "POST /agents/{agent_id}/runs";r=1;t=12'),
    )


@pytest.mark.parametrize(
    "state",
    [
        None,  # no limit counts the route
        RateLimitState("user_id", "alice", (DEFAULT,)),  # explain: nothing taken
        RateLimitState("user_id", "alice", (DEFAULT,), backend_error=True),  # on_error: allow let it through
    ],
)
def test_no_fields_when_no_token_was_taken(state: RateLimitState | None) -> None:
    assert allowed_fields(state) == ()
