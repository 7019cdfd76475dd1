"""proxy/trial.py: which refusals dry run forwards, when the shadow differs, when the upstream disagrees."""

from __future__ import annotations

import pytest

from authproxy.errors import InsufficientScope, MissingToken, RateLimited, RequestRejected
from authproxy.policy.decision import Decision, deny
from authproxy.proxy.trial import dry_run_passes, shadow_differs, upstream_divergence, verdict

ALLOW = Decision(True, None, "scopes satisfied", route="GET /agents", subject="alice")


def refused(error: RequestRejected) -> Decision:
    return deny(ALLOW, error)


def test_verdict_is_allow_or_the_status() -> None:
    assert verdict(ALLOW) == "allow"
    assert verdict(refused(MissingToken("no token"))) == "401"
    assert verdict(refused(InsufficientScope("short", ("a",), ("a",)))) == "403"


@pytest.mark.parametrize(
    ("error", "passes"),
    [
        (MissingToken("no token"), True),
        (InsufficientScope("short", ("a",), ("a",)), True),
        (RateLimited("slow down"), True),
        (RequestRejected("ambiguous path"), False),  # not the policy's refusal: the request is unsafe as sent
    ],
)
def test_dry_run_forwards_the_policys_own_refusals_only(error: RequestRejected, passes: bool) -> None:
    assert dry_run_passes(True, refused(error)) is passes
    assert dry_run_passes(False, refused(error)) is False
    assert dry_run_passes(True, ALLOW) is False


def test_the_shadow_differs_on_the_decision_not_on_rate_limits() -> None:
    scope = refused(InsufficientScope("short", ("a",), ("a",)))
    compared = shadow_differs(ALLOW, scope)
    assert compared is not None
    assert (compared.fields()["enforced"], compared.fields()["shadow"]) == ("allow", "403")
    assert shadow_differs(ALLOW, ALLOW) is None
    assert shadow_differs(refused(RateLimited("slow")), ALLOW) is None  # the shadow spends no limits


@pytest.mark.parametrize(
    ("decision", "would", "upstream", "expected"),
    [
        (ALLOW, None, 403, ("allow", "403")),
        (ALLOW, None, 401, ("allow", "401")),
        (ALLOW, None, 404, None),
        (ALLOW, None, None, None),  # no answer from the upstream
        (refused(MissingToken("x")), refused(MissingToken("x")), 200, ("401", "200")),
        (refused(MissingToken("x")), refused(MissingToken("x")), 401, None),  # both refuse
        (refused(MissingToken("x")), None, None, None),  # refused and answered by us
    ],
)
def test_upstream_divergence(
    decision: Decision, would: Decision | None, upstream: int | None, expected: tuple[str, str] | None
) -> None:
    assert upstream_divergence(decision, would, upstream) == expected
