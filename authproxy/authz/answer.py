"""A Decision as a check answer: 200 with the identity headers, or the proxy's own denial.

The identity headers come from the runtime's HeaderPlan through proxy/headers.py `identity_headers`, the
function that sets them on the proxied request, so a header's name and value (and the refusal of a claim
that cannot travel in one) never differ between the two ports. Denials are rendered by answers/table.py:
the same status, JSON body and WWW-Authenticate, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from authproxy.answers.denials import render_denial
from authproxy.answers.table import Rendered
from authproxy.config.headers import normalise
from authproxy.errors import ProxiedPortOnly
from authproxy.limits.headers import allowed_fields
from authproxy.policy.decision import Decision, deny
from authproxy.policy.reads import Reads
from authproxy.proxy.headers import identity_headers
from authproxy.runtime import Runtime

__all__ = ["CheckAnswer", "check_answer", "dry_run_answer"]

_PROXIED_PORT_ONLY = (
    "this route's checks read the body, the answer or each message: it is served by the proxied port"
)


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    decision: Decision  # as answered: a claim that cannot travel in a header turns an allow into a denial
    rendered: Rendered  # 200 with the identity headers, or the denial
    # Allowed only: upstream request headers the front end must remove, because the proxy would not pass
    # them: the identity headers this decision leaves unset (a client's copy must not pass for ours), and
    # the token when forward.strip_authorization is on.
    remove: tuple[str, ...] = ()
    # Allowed only: headers for the client's answer, not the upstream request: the RateLimit fields of a
    # limited route (the HTTP port adds them to its 200; gRPC sends them as response_headers_to_add).
    client_headers: tuple[tuple[str, str], ...] = ()


def check_answer(rt: Runtime, decision: Decision) -> CheckAnswer:
    """The check's answer. An allow whose stage reads past the request line is refused: the proxy would cut
    the answer, check the body or read each message, but a front end passes the request and its answer
    whole, so the decision port cannot honour it. Refused, never widened; the stage says so, not a list."""
    if decision.allowed and decision.reads is not Reads.NOTHING:
        decision = deny(decision, ProxiedPortOnly(_PROXIED_PORT_ONLY))
    if not decision.allowed:
        return CheckAnswer(decision, render_denial(rt, decision, None))
    plan = rt.header_plan
    headers = tuple(identity_headers(plan, decision))
    set_here = {normalise(name) for name, _ in headers}
    remove = [name.lower() for _, name in plan.identity if normalise(name) not in set_here]
    if rt.config.forward.strip_authorization:
        remove.append(rt.config.jwt.header.lower())
    fields = allowed_fields(decision.rate_limit)
    return CheckAnswer(decision, Rendered(200, headers, b""), tuple(remove), fields)


def dry_run_answer(rt: Runtime, refused: Decision) -> CheckAnswer:
    """A would-be refusal let through (`policy.dry_run` with `authz.dry_run`): 200, with the identity headers
    of a verified token only, and no stage (nothing verified grants one). A token we could not verify is
    left on the request, for the upstream's own checks to decide."""
    passed = replace(refused, allowed=True, error=None, stage=None)
    answer = check_answer(rt, passed)
    remove = answer.remove
    if refused.subject is None:
        token = rt.config.jwt.header.lower()
        remove = tuple(name for name in remove if name != token)
    return replace(answer, decision=refused, remove=remove)
