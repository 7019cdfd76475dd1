"""gate.authorize: the one decision, its wire codes taken from the error classes, and identity refusals made
here (never after the gate)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from multidict import CIMultiDict

from authproxy.config import load_text
from authproxy.errors import BadTarget, InsufficientScope, InvalidToken, MissingToken
from authproxy.gate import authorize
from authproxy.policy.decision import Decision
from authproxy.runtime import Runtime, build_runtime
from tests.rigs.config import hs256_head
from tests.rigs.keys import Bearer, Mint, bearer_headers

AUDIENCE = "gate-test"
POLICY = (
    hs256_head("{audience}", upstream="http://127.0.0.1:7777")
    + """\
policy:
  admin_scope: proxy:admin
  public: [GET /health]
  routes:
    "POST /agents/{{agent_id}}/runs": [agents:run]
    "GET /a2a/agents/{{agent_id}}/card": [agents:read]
    "GET /reports": [reports:read]
{forward}"""
)


def runtime(secret: bytes, forward: str = "") -> Runtime:
    text = POLICY.format(secret=secret.decode(), audience=AUDIENCE, forward=textwrap.dedent(forward))
    return build_runtime(load_text(text, "gate.yaml"))


@pytest.fixture
def rt(hs_secret: bytes) -> Runtime:
    return runtime(hs_secret)


@pytest.fixture
def bearer(mint: Mint) -> Bearer:
    return bearer_headers(mint, AUDIENCE)


async def decide(rt: Runtime, method: str, target: str, headers: CIMultiDict[str] | None = None) -> Decision:
    return await authorize(rt, method, target, headers if headers is not None else CIMultiDict())


@pytest.mark.parametrize(
    ("method", "target", "reason"),
    [
        ("get", "/reports", "request method must be upper-case"),
        ("CONNECT", "/reports", "CONNECT is not supported"),
        ("GET", "/a/../reports", None),
    ],
)
async def test_refused_request_is_a_bad_request(
    rt: Runtime, method: str, target: str, reason: str | None
) -> None:
    decision = await decide(rt, method, target)
    assert (decision.allowed, decision.error, decision.route) == (False, BadTarget.code, None)
    assert decision.error == "bad_request"
    assert reason is None or decision.reason == reason


async def test_public_route_needs_no_token(rt: Runtime) -> None:
    decision = await decide(rt, "GET", "/health", CIMultiDict({"Authorization": "Bearer garbage"}))
    assert decision == Decision(True, None, "public route", route="GET /health", public=True)


async def test_missing_and_invalid_tokens_take_their_class_codes(rt: Runtime) -> None:
    missing = await decide(rt, "GET", "/reports")
    assert (missing.error, missing.reason, missing.route) == (
        MissingToken.code,
        "authentication required: no bearer token",
        "GET /reports",
    )
    assert missing.error == "missing_token"
    invalid = await decide(rt, "GET", "/reports", CIMultiDict({"Authorization": "Bearer not.a.jwt"}))
    assert (invalid.allowed, invalid.error) == (False, InvalidToken.code)
    assert invalid.error == "invalid_token"


async def test_short_scopes_name_what_is_required_and_missing(rt: Runtime, bearer: Any) -> None:
    decision = await decide(rt, "GET", "/reports", bearer("agents:read", sub="bob"))
    assert (decision.allowed, decision.error) == (False, InsufficientScope.code)
    assert decision.error == "insufficient_scope"
    assert (decision.required_scopes, decision.missing_scopes) == (("reports:read",), ("reports:read",))
    assert decision.subject == "bob"


async def test_allowed_decision_carries_the_identity(rt: Runtime, bearer: Any) -> None:
    decision = await decide(rt, "GET", "/reports", bearer("reports:read", "x:y", session_id="s-1"))
    assert (decision.allowed, decision.error, decision.reason) == (True, None, "scopes satisfied")
    assert (decision.subject, decision.session_id, decision.scopes) == (
        "alice",
        "s-1",
        ("reports:read", "x:y"),
    )


# --- per-item scopes read from the path, without the preset (PRODUCT.md) -----------------------------


@pytest.mark.parametrize(
    ("target", "scope", "allowed"),
    [
        ("/agents/web-search-agent/runs", "agents:web-search-agent:run", True),
        ("/agents/web-search-agent/runs", "agents:*:run", True),
        ("/agents/web-search-agent/runs", "agents:run", True),
        ("/agents/agno-agent/runs", "agents:web-search-agent:run", False),
        ("/agents/web-search-agent/runs", "agents:web-search-agent:read", False),
    ],
)
async def test_seed_rule_admits_a_per_agent_token_without_the_preset(
    rt: Runtime, bearer: Any, target: str, scope: str, allowed: bool
) -> None:
    assert rt.config.policy.preset is None
    decision = await decide(rt, "POST", target, bearer(scope))
    assert decision.allowed is allowed
    assert decision.required_scopes == ("agents:run",)
    if not allowed:
        assert decision.missing_scopes == ("agents:run",)


async def test_per_item_scope_after_a2a(rt: Runtime, bearer: Any) -> None:
    assert (await decide(rt, "GET", "/a2a/agents/a1/card", bearer("agents:a1:read"))).allowed
    assert not (await decide(rt, "GET", "/a2a/agents/a2/card", bearer("agents:a1:read"))).allowed


# --- identity checks belong to the gate -------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "alice\r\nX-Auth-Scopes: proxy:admin"}, "the user_id claim holds a control character"),
        ({"sub": "alice", "session_id": "s\x00"}, "the session_id claim holds a control character"),
        ({"sub": "alice", "scopes": ["reports:read", "x proxy:admin"]}, None),
    ],
)
async def test_identity_that_headers_cannot_carry_is_an_invalid_token(
    rt: Runtime, mint: Mint, claims: dict[str, Any], reason: str | None
) -> None:
    token = mint({"aud": AUDIENCE, "scopes": ["reports:read"], **claims})
    decision = await decide(rt, "GET", "/reports", CIMultiDict({"Authorization": f"Bearer {token}"}))
    assert (decision.allowed, decision.error) == (False, "invalid_token")
    assert decision.reason == (reason or "a scope holds whitespace and cannot be forwarded")


async def test_identity_headers_turned_off_leave_nothing_to_refuse(hs_secret: bytes, mint: Mint) -> None:
    rt = runtime(hs_secret, "forward:\n  identity_headers: {}\n")
    token = mint({"aud": AUDIENCE, "sub": "alice\nroot", "scopes": ["reports:read", "a b"]})
    decision = await decide(rt, "GET", "/reports", CIMultiDict({"Authorization": f"Bearer {token}"}))
    assert (decision.allowed, decision.subject) == (True, "alice\nroot")
