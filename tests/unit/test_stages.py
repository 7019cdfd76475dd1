"""The stages after the gate: one typed value per decision, each saying what it reads, attached by the gate
from the route (an MCP path is marked in the route table, whichever rule matches it) or the caller's scopes,
and refused by the decision port whenever it reads past the request line."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from authproxy.authz.answer import check_answer
from authproxy.config import load_text
from authproxy.config.content import ContentRule, FieldClaim, ItemScopes, OwnerLookup, parse_field
from authproxy.errors import ConfigError
from authproxy.gate import authorize
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.decision import Decision
from authproxy.policy.listing import ListingFilter
from authproxy.policy.reads import Reads
from authproxy.policy.roster import RosterFilter
from authproxy.policy.stages import McpMessages, McpMetadata
from authproxy.policy.ws_messages import MessageGrant
from authproxy.runtime import Runtime, build_runtime
from tests.rigs.config import hs256_head
from tests.rigs.keys import Mint

AUDIENCE = "stage-test"
POLICY = (
    hs256_head("{audience}", upstream="http://127.0.0.1:7777")
    + """\
policy:
  admin_scope: proxy:admin
  routes:
    "* /**": [proxy:use]
    "GET /items": {{scopes: [items:read], pin: {{query.user_id: user_id}}}}
{extra}
mcp:
  endpoints:
    /mcp:
      tools:
        whoami: [proxy:use]
"""
)


def runtime(secret: bytes, extra: str = "") -> Runtime:
    return build_runtime(
        load_text(POLICY.format(secret=secret.decode(), audience=AUDIENCE, extra=extra), "s.yaml")
    )


@pytest.fixture
def bearer(mint: Mint) -> Any:
    def make(*scopes: str) -> CIMultiDict[str]:
        token = mint({"sub": "alice", "aud": AUDIENCE, "scopes": list(scopes)})
        return CIMultiDict({"Authorization": f"Bearer {token}"})

    return make


def plan(rule: ContentRule) -> ContentPlan:
    return ContentPlan(rule, (("user_id", "alice"), ("session_id", None)), (), frozenset())


def test_each_stage_says_what_it_reads() -> None:
    user = FieldClaim(parse_field("query.user_id"), "user_id")
    body_pin = FieldClaim(parse_field("json:/user_id"), "user_id")
    assert plan(ContentRule(pins=(user,))).reads == Reads.QUERY
    assert plan(ContentRule(pins=(body_pin,))).reads == Reads.BODY
    assert (
        plan(ContentRule(items=(ItemScopes(parse_field("json:/a"), ("a:{value}:run",)),))).reads == Reads.BODY
    )
    assert plan(ContentRule(owner=OwnerLookup("/x"))).reads == Reads.LOOKUP
    assert plan(ContentRule(response=(body_pin,), pins=(user,))).reads == Reads.QUERY | Reads.ANSWER
    assert ListingFilter("agents", frozenset()).reads == Reads.ANSWER
    assert RosterFilter(()).reads == Reads.ANSWER
    assert MessageGrant(None).reads == Reads.MESSAGES
    assert McpMetadata(None).reads == Reads.OWN_ANSWER
    assert Decision(True, None, "ok").reads == Reads.NOTHING


@pytest.mark.parametrize("target", ["/mcp", "/mcp/", "/%6Dcp", "/mcp?x=1"])
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE", "PUT", "PATCH"])
async def test_every_request_to_an_mcp_path_carries_the_mcp_stage(
    hs_secret: bytes, bearer: Any, method: str, target: str
) -> None:
    # PUT and PATCH match the catch-all rule, not the endpoint's: the path still makes them MCP requests
    # (the stage answers them 405), so no method reaches an MCP server unchecked.
    decision = await authorize(runtime(hs_secret), method, target, bearer("proxy:use"))
    assert decision.allowed
    assert isinstance(decision.stage, McpMessages) and decision.stage.site.path == "/mcp"


async def test_a_refusal_on_an_mcp_path_keeps_its_stage_for_the_challenge(hs_secret: bytes) -> None:
    decision = await authorize(runtime(hs_secret), "POST", "/mcp", CIMultiDict())
    assert (decision.allowed, decision.error) == (False, "missing_token")
    assert isinstance(decision.stage, McpMessages)


@pytest.mark.parametrize(
    ("method", "target", "metadata"),
    [
        ("GET", "/.well-known/oauth-protected-resource/mcp", True),
        ("HEAD", "/.well-known/oauth-protected-resource", True),
        ("POST", "/.well-known/oauth-protected-resource/mcp", False),  # decided as any request
    ],
)
async def test_metadata_is_a_public_stage_for_reads_only(
    hs_secret: bytes, bearer: Any, method: str, target: str, metadata: bool
) -> None:
    rt = runtime(hs_secret)
    anonymous = await authorize(rt, method, target, CIMultiDict())
    assert isinstance(anonymous.stage, McpMetadata) is metadata
    if metadata:
        assert anonymous.allowed and anonymous.public
    else:
        assert not anonymous.allowed  # no public rule for it, no token


async def test_the_decision_port_refuses_every_stage_that_reads_and_keeps_the_rest(
    hs_secret: bytes, bearer: Any
) -> None:
    rt = runtime(hs_secret)
    for target, stage_kind in (("/items", ContentPlan), ("/mcp", McpMessages)):
        decision = await authorize(rt, "GET", target, bearer("proxy:use", "items:read"))
        assert decision.allowed and isinstance(decision.stage, stage_kind)
        answer = check_answer(rt, decision)
        assert (answer.decision.allowed, answer.decision.error) == (False, "proxied_port_only")
        assert answer.rendered.status == 403
        assert answer.decision.stage is decision.stage  # the refusal keeps what it refused
    plain = await authorize(rt, "GET", "/other", bearer("proxy:use"))
    assert plain.stage is None and check_answer(rt, plain).rendered.status == 200


@pytest.mark.parametrize(
    "extra",
    [
        '    "PUT /mcp": {scopes: [proxy:use], pin: {json:/user_id: user_id}}\n',
        '    "* /mcp/": {scopes: [proxy:use], pin: {query.user_id: user_id}}\n',
    ],
)
def test_a_content_rule_where_the_mcp_stage_runs_is_a_config_error(hs_secret: bytes, extra: str) -> None:
    with pytest.raises(ConfigError, match="its content rule cannot run where the MCP endpoint checks each"):
        runtime(hs_secret, extra)
