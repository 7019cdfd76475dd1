"""A Decision as a check response: 200 with the identity headers, or the proxy's own denial.

The identity headers come from the runtime's HeaderPlan, the same call that builds the proxied request's
headers, so a header's name and value (and the refusal of a claim that cannot travel in one) never differ
between the two ports. Denials are rendered by proxy/responses.py: the same status, JSON body and
WWW-Authenticate, byte for byte.
"""

from __future__ import annotations

from dataclasses import replace

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.authz.original import Frontend
from authproxy.errors import InvalidToken
from authproxy.policy.decision import Decision
from authproxy.proxy.headers import normalise
from authproxy.proxy.responses import Rendered, render_decision, render_error
from authproxy.runtime import Runtime

__all__ = ["ENVOY_REMOVE", "check_answer"]

# Envoy's ext_authz HTTP service removes the headers this response header names from the upstream request.
ENVOY_REMOVE = "x-envoy-auth-headers-to-remove"
_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())


def check_answer(rt: Runtime, frontend: Frontend, decision: Decision) -> tuple[Decision, Rendered]:
    """The decision as answered (a claim that cannot travel in a header denies it) and the answer."""
    if not decision.allowed:
        return decision, render_decision(decision)
    if decision.listing is not None:
        # The proxy answers such a listing with only the items the caller may read; a front end would relay
        # the whole of it, so the decision port cannot honour this allow. Refused, never widened.
        return decision, render_error(
            403, "listing_filter_unsupported", "a per-scope listing is served through the proxied port only"
        )
    plan = rt.header_plan
    try:
        built = plan.upstream_headers(_NO_HEADERS, decision, peer=None, proto="http")
    except InvalidToken as bad:
        # as on the proxied port: a claim that cannot be forwarded is an invalid token
        denied = replace(decision, allowed=False, error="invalid_token", reason=bad.reason)
        return denied, render_decision(denied)
    identity_names = {normalise(name) for _, name in plan.identity}
    headers = [(name, value) for name, value in built if normalise(name) in identity_names]
    if frontend == "envoy":
        # Envoy copies our identity headers over the client's, but one we do not set would pass as the client
        # sent it: name every identity header we leave out (and the token, when the proxy strips it).
        left_out = [
            name for _, name in plan.identity if normalise(name) not in {normalise(n) for n, _ in headers}
        ]
        if rt.config.forward.strip_authorization:
            left_out.append(rt.config.jwt.header)
        if left_out:
            headers.append((ENVOY_REMOVE, ",".join(name.lower() for name in left_out)))
    return decision, Rendered(200, tuple(headers), b"")
