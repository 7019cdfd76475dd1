"""authorize(): the one composition of target -> route -> token -> scopes, shared by the proxy and `explain`.

Order matters: the route is matched before the token is looked at, so a public route never touches a token
and every later step knows what the route requires. Every stage raises a typed RequestRejected; this is the
one place those become a denial Decision. Nothing here raises for a bad request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.auth.claims import Identity, check_forwardable
from authproxy.auth.extract import extract_token
from authproxy.errors import (
    BadTarget,
    ConditionFailed,
    InsufficientScope,
    KeyNotFound,
    MissingToken,
    RequestRejected,
)
from authproxy.limits.check import apply_limits
from authproxy.policy.agentos_content import preset_stage
from authproxy.policy.conditions import REFUSED, Judged, judge, request_variables
from authproxy.policy.decision import Decision, deny
from authproxy.policy.mcp.resource import check_audience, check_origin
from authproxy.policy.scopes import evaluate
from authproxy.policy.stages import McpMessages, McpMetadata
from authproxy.policy.target import Target, parse_target

if TYPE_CHECKING:
    from authproxy.auth.verified import VerifiedToken
    from authproxy.config.conditions import Condition
    from authproxy.policy.stages import Stage
    from authproxy.policy.table import RouteMatch
    from authproxy.runtime import Runtime

__all__ = ["authorize"]


def _deny(error: RequestRejected, match: RouteMatch | None = None, stage: Stage | None = None) -> Decision:
    route = match.route if match is not None else None
    return deny(Decision(allowed=False, error=None, reason="", route=route, stage=stage), error)


async def _verify(rt: Runtime, token: str) -> VerifiedToken:
    try:
        return rt.verifier.verify(token)
    except KeyNotFound as unknown:
        # A remote key source may have rotated in a new key: refresh (rate-limited) and retry once.
        if await rt.keys.refresh_for_unknown_kid(unknown.kid):
            return rt.verifier.verify(token)
        raise


Headers = CIMultiDictProxy[str] | CIMultiDict[str]


async def authenticate(rt: Runtime, headers: Headers, stage: Stage | None = None) -> VerifiedToken:
    """The caller's verified token from the configured token sources; raises MissingToken / InvalidToken.

    An identity the identity headers cannot carry is refused here, so no later stage turns an allow into
    a deny: `explain`, `authproxy test` and the proxy see the same 401. On an MCP endpoint the token must
    also be bound to the endpoint's resource (policy/mcp/resource.py).
    """
    token = extract_token(headers, rt.config.jwt)
    if token is None:
        raise MissingToken("authentication required: no bearer token")
    verified = await _verify(rt, token)
    if isinstance(stage, McpMessages) and rt.mcp is not None:
        check_audience(rt.mcp, stage.site, verified.claims)
    check_forwardable(verified.identity, rt.header_plan.identity)
    return verified


async def authorize(
    rt: Runtime,
    method: str,
    raw_target: str,
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
    *,
    consume: bool = False,  # take rate-limit tokens: the proxy does, `explain` and `test` only report
    peer: str | None = None,  # the TCP peer's address: limits keyed by client_ip count it
) -> Decision:
    refused = _refused_method(method)
    if refused is not None:
        return _deny(BadTarget(refused))
    try:
        target = parse_target(raw_target)
    except BadTarget as bad:
        return _deny(bad)
    match = rt.table.match(method, target.segments)
    # A path's own stage (an MCP endpoint, its metadata) is known from the path alone, before the token: a
    # refusal there is answered as that route answers (an MCP challenge names its metadata).
    stage = rt.table.stage_for(target.segments)
    if isinstance(stage, McpMetadata) and method not in ("GET", "HEAD"):
        stage = None  # the metadata is read, never written: other methods are decided as any request
    if isinstance(stage, McpMessages) and rt.mcp is not None:
        try:  # before any other check: a page a browser was lured to learns nothing (DNS rebinding)
            check_origin(rt.mcp, headers.getall("Origin", []), headers.getall("Host", []))
        except RequestRejected as foreign:
            return _deny(foreign, match, stage)
    if match is not None and match.public:
        public = Decision(
            allowed=True, error=None, reason="public route", route=match.route, public=True, stage=stage
        )
        return await apply_limits(rt.limits, public, None, consume=consume, peer=peer, headers=headers)
    try:
        verified = await authenticate(rt, headers, stage)
    except RequestRejected as rejected:
        return _deny(rejected, match, stage)
    identity = verified.identity
    try:
        allowed = _authorize_identity(rt, (method, target, headers), match, verified, stage)
    except InsufficientScope as short:
        return _with_identity(_deny(short, match, stage), identity)
    if not allowed.allowed:  # its condition refused: no rate-limit tokens are spent on a refusal
        return allowed
    return await apply_limits(rt.limits, allowed, identity, consume=consume, peer=peer, headers=headers)


def _refused_method(method: str) -> str | None:
    # Methods are case-sensitive (RFC 9110 9.1), yet some upstream stacks upper-case them: "delete" must not
    # be judged as an unknown method and then run as DELETE. CONNECT would turn the connection into a tunnel.
    if not method.isupper():
        return "request method must be upper-case"
    if method == "CONNECT":
        return "CONNECT is not supported"
    return None


def _authorize_identity(
    rt: Runtime,
    request: tuple[str, Target, Headers],
    match: RouteMatch | None,
    verified: VerifiedToken,
    stage: Stage | None,
) -> Decision:
    method = request[0]
    identity = verified.identity
    policy = rt.config.policy
    admin = policy.admin_scope
    if match is None:
        if admin is not None and admin in identity.scopes:
            return _allow(None, identity, "admin scope (route not in policy)", stage=stage)
        if policy.unmapped == "authenticated":
            return _allow(None, identity, "route not in policy; unmapped: authenticated", stage=stage)
        required: tuple[str, ...] = (admin,) if admin is not None else ()
        raise InsufficientScope("no policy rule matches this route", required, required)
    assert match.requirement is not None  # only public matches carry none, handled above
    result = evaluate(match.requirement, identity.scopes, match.params, admin_scope=admin, method=method)
    needed = match.requirement.scopes_for(match.params)
    if not result.allowed:
        raise InsufficientScope("insufficient scope for this route", needed, result.missing)
    # An MCP tool rule's `when` reads the claims after the gate.
    claims = verified.claims if rt.mcp is not None else None
    judged: Judged | None = None
    pending: _Pending = None
    if match.condition is not None:  # after the scopes, for the admin scope too: it does not bypass a `when`
        try:
            judged, pending = _condition(match.condition, request, match, verified)
        except ConditionFailed as failed:
            allowed = _allow(
                match, identity, "scopes satisfied", needed, stage or result.listing, claims=claims
            )
            return deny(allowed, failed)
    decision = _allow(
        match, identity, "scopes satisfied", needed, stage or result.listing, claims=claims, condition=judged
    )
    return _with_stage(rt, decision, pending, (method, match.route), identity)


_Pending = tuple["Condition", dict[str, object]] | None  # a condition on the body, its other variables built


def _condition(
    condition: Condition, request: tuple[str, Target, Headers], match: RouteMatch, verified: VerifiedToken
) -> tuple[Judged | None, _Pending]:
    """The route's condition judged (ConditionFailed when it is not true), or, for a condition on the body,
    left to the content stage with its other variables built."""
    method, target, headers = request
    variables = request_variables(
        condition, verified.claims, method, target.segments, target.query, headers.items(), match.params
    )
    if condition.reads_body:
        return None, (condition, variables)
    return judge(condition, variables), None


def _with_stage(
    rt: Runtime, decision: Decision, pending: _Pending, request: tuple[str, str], identity: Identity
) -> Decision:
    """The allow with the stage that carries it out, if its route has one (`request`: method and route)."""
    method, route = request
    admin = rt.config.policy.admin_scope
    # At most one stage per route: runtime.py refuses a policy whose route would have two.
    if decision.stage is None and rt.content is not None:  # one test when no rule reads content
        content = rt.content.bind(decision, admin, pending)
        if content is not None:
            return replace(decision, stage=content)
    if pending is not None:  # no stage of this request reads the body (runtime.py refuses that): fail closed
        unread = "error: the body is not read on this request"
        return deny(decision, ConditionFailed(REFUSED, pending[0].describe(), unread))
    if decision.stage is not None:
        return decision
    kind = rt.preset_routes.get(route) if rt.preset_routes else None
    if kind is None:
        return decision
    found = preset_stage(kind, method, identity.scopes, admin, identity.user_id)
    return decision if found is None else replace(decision, stage=found)


def _allow(
    match: RouteMatch | None,
    identity: Identity,
    reason: str,
    required: tuple[str, ...] = (),
    stage: Stage | None = None,
    *,
    claims: Mapping[str, Any] | None = None,
    condition: Judged | None = None,
) -> Decision:
    return Decision(
        allowed=True,
        error=None,
        reason=reason,
        route=match.route if match is not None else None,
        required_scopes=required,
        subject=identity.user_id,
        session_id=identity.session_id,
        scopes=tuple(sorted(identity.scopes)),
        jti=identity.jti,
        params=match.params if match is not None else (),
        stage=stage,
        condition=condition,
        claims=claims,
    )


def _with_identity(decision: Decision, identity: Identity) -> Decision:
    return replace(decision, subject=identity.user_id, session_id=identity.session_id, jti=identity.jti)
