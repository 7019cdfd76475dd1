"""authorize(): the one composition of target -> route -> token -> scopes, shared by the proxy and `explain`.

Order matters: the route is matched before the token is looked at, so a public route never touches a token
and every later step knows what the route requires. Every stage raises a typed RequestRejected; this is the
one place those become a denial Decision. Nothing here raises for a bad request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.auth.claims import Identity, check_forwardable
from authproxy.auth.extract import extract_token
from authproxy.errors import (
    BadTarget,
    InsufficientScope,
    KeyNotFound,
    MissingToken,
    RequestRejected,
)
from authproxy.limits.check import apply_limits
from authproxy.policy.agentos_content import preset_stage
from authproxy.policy.decision import Decision, deny
from authproxy.policy.mcp.resource import check_audience, check_origin
from authproxy.policy.scopes import evaluate
from authproxy.policy.stages import McpMessages, McpMetadata
from authproxy.policy.target import parse_target

if TYPE_CHECKING:
    from authproxy.auth.verified import VerifiedToken
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


async def authenticate(
    rt: Runtime, headers: CIMultiDictProxy[str] | CIMultiDict[str], stage: Stage | None = None
) -> Identity:
    """The caller's identity from the configured token sources; raises MissingToken / InvalidToken.

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
    identity = verified.identity
    check_forwardable(identity, rt.header_plan.identity)
    return identity


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
        identity = await authenticate(rt, headers, stage)
    except RequestRejected as rejected:
        return _deny(rejected, match, stage)
    try:
        allowed = _authorize_identity(rt, method, match, identity, stage)
    except InsufficientScope as short:
        return _with_identity(_deny(short, match, stage), identity)
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
    rt: Runtime, method: str, match: RouteMatch | None, identity: Identity, stage: Stage | None
) -> Decision:
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
    decision = _allow(match, identity, "scopes satisfied", needed, stage or result.listing)
    if decision.stage is not None:
        return decision
    # At most one stage per route: runtime.py refuses a policy whose route would have two.
    if rt.content is not None:  # one identity test when no rule of the policy reads content
        content = rt.content.bind(decision, admin)
        if content is not None:
            return replace(decision, stage=content)
    kind = rt.preset_routes.get(match.route) if rt.preset_routes else None
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
    )


def _with_identity(decision: Decision, identity: Identity) -> Decision:
    return replace(decision, subject=identity.user_id, session_id=identity.session_id, jti=identity.jti)
