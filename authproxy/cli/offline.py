"""The checks after the gate, run without the upstream, for `authproxy explain` and `authproxy test`.

The gate is `authorize`, as on every port; the checks after it are the stage's own pure functions
(policy/content/check.py, proxy/mcp/messages.py), the ones the proxied port carries out; a refusal is
rendered by `render_denial`, as the proxied port renders it. So explain, test and the proxy agree byte for
byte. What needs the upstream (an owner lookup, the answer's checks, each WebSocket message) is reported
as pending, with what it compares, unless a canned answer (`authproxy test`'s `upstream:`) stands in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from multidict import CIMultiDict

from authproxy.answers.denials import render_denial
from authproxy.answers.table import Rendered, render_upstream_error
from authproxy.authz.answer import check_answer as decision_port_answer
from authproxy.errors import ConditionFailed, RequestRejected, UpstreamError
from authproxy.policy.content.check import (
    check_answer,
    check_lookup_answer,
    check_request,
    owner_lookup,
)
from authproxy.policy.content.fields import Body
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.decision import Decision, deny
from authproxy.policy.stages import McpMessages, McpMetadata
from authproxy.proxy.mcp.jsonrpc import BadMessage, Post
from authproxy.proxy.mcp.messages import (
    TRANSPORT,
    Caller,
    check_method,
    check_post,
    post_refusal,
    refuse_encoding,
)
from authproxy.runtime import Runtime

__all__ = ["Canned", "Check", "DecisionPort", "Explained", "Request", "after_the_gate"]

Result = Literal["passed", "refused", "pending"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes | None = None  # None: not given, so the checks that read it are pending


@dataclass(frozen=True, slots=True)
class Canned:
    """An answer of the upstream given in advance (a test case's `upstream:`)."""

    status: int
    body: bytes

    @property
    def pair(self) -> tuple[int, bytes]:
        return self.status, self.body


@dataclass(frozen=True, slots=True)
class DecisionPort:
    """The decision port's answer to the same request: its status, its error, and whether it differs from
    the gate's (an allow it refuses, `proxied_port_only`)."""

    status: int
    error: str | None
    differs: bool


@dataclass(frozen=True, slots=True)
class Check:
    label: str
    description: str
    result: Result


@dataclass(slots=True)
class Explained:
    """One request decided whole: the decision as answered, each check, and the answer."""

    decision: Decision  # the gate's, denied by a stage's refusal when one refused
    checks: list[Check]
    answer: Rendered | None  # an answer of our own (a denial, an upstream failure); None otherwise
    forwarded: bool  # the request goes to the upstream
    upstream: Canned | None = None  # the canned answer relayed to the client, when one was given
    unused: int = 0  # canned answers no check asked for
    failed: str | None = None  # the code of an upstream failure answered instead (a failed owner lookup)
    decision_port: DecisionPort | None = None  # its answer to the same request

    @property
    def port(self) -> str:
        """`any`: the decision port decides this request as the proxied port does; `proxied`: only the
        proxied port serves it (its checks read past the request line: the decision port refuses it)."""
        return "proxied" if self.decision_port is not None and self.decision_port.differs else "any"

    @property
    def status(self) -> int:
        """The status the client receives: ours, the canned upstream's, else 200 (forwarded)."""
        if self.answer is not None:
            return self.answer.status
        return self.upstream.status if self.upstream is not None else 200

    @property
    def error(self) -> str | None:
        """The answer's `error`: the decision's, or the upstream failure's."""
        return self.decision.error or self.failed

    @property
    def body_bytes(self) -> bytes:
        if self.answer is not None:
            return self.answer.body
        return self.upstream.body if self.upstream is not None else b""

    def document(self) -> dict[str, Any]:
        """The `--json` object (docs/policy.md, "explain")."""
        d = self.decision
        headers = dict(self.answer.headers) if self.answer is not None else {}
        return {
            "decision": "allow" if d.allowed else "deny",
            "status": self.status,
            "forwarded": self.forwarded,
            "port": self.port,
            "route": d.route,
            "required_scopes": list(d.required_scopes),
            "missing_scopes": list(d.missing_scopes),
            "subject": d.subject,
            "reason": d.reason,
            "error": self.error,
            "checks": [
                {"label": c.label, "description": c.description, "result": c.result} for c in self.checks
            ],
            "headers": headers,
            "body": _json_or_text(self.body_bytes) if self.body_bytes else None,
            "decision_port": None
            if self.decision_port is None
            else {"status": self.decision_port.status, "error": self.decision_port.error},
        }

    def report(self) -> dict[str, str]:
        """The text report's fields, in order (`checks` as lines of its own)."""
        d = self.decision
        report: dict[str, str] = {
            "decision": "allow" if d.allowed else "deny",
            "status": _where(d) if d.allowed else "",
            "route": d.route or ("(none)" if not d.public else ""),
            "required scopes": " ".join(d.required_scopes) or "(none)",
            "missing scopes": " ".join(d.missing_scopes) or "(none)",
            "subject": d.subject or "(none)",
            "reason": d.reason,
        }
        if d.allowed and d.stage is not None:
            report[d.stage.label] = d.stage.describe()
        if d.rate_limit is not None:
            report["rate limits"] = d.rate_limit.describe()
        if self.answer is not None:
            report.update(status=str(self.answer.status), error=self.error or "")
            for name, value in self.answer.headers:
                if name == "WWW-Authenticate":
                    report["www-authenticate"] = value
            report["body"] = self.answer.body.decode()
        report["checks"] = "".join(f"\n  {c.label}: {c.result} ({c.description})" for c in self.checks)
        return report

    def text(self) -> str:
        return "\n".join(f"{k}: {v}" if k != "checks" else f"checks:{v}" for k, v in self.report().items())


def _where(decision: Decision) -> str:
    if isinstance(decision.stage, McpMetadata):
        return "answered by the proxy"
    return "forwarded to upstream" + (
        f" after its {decision.stage.label}" if decision.stage is not None else ""
    )


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class _Checks:
    """The checks run so far; each records whether it passed or refused (and lets the refusal through)."""

    def __init__(self, canned: Sequence[Canned] | None) -> None:
        self.done: list[Check] = []
        self.canned = list(canned) if canned is not None else None

    def run(self, label: str, description: str, check: Callable[[], T]) -> T:
        value = self.attempt(label, description, check)
        self.done.append(Check(label, description, "passed"))
        return value

    def attempt(self, label: str, description: str, check: Callable[[], T]) -> T:
        """`check()`, recorded only when it refuses: a step of a check that is recorded whole later."""
        try:
            return check()
        except (RequestRejected, UpstreamError):
            self.done.append(Check(label, description, "refused"))
            raise

    def pending(self, label: str, description: str) -> None:
        self.done.append(Check(label, description, "pending"))

    def answer(self) -> Canned | None:
        """The upstream's next canned answer, if the case gave one."""
        return self.canned.pop(0) if self.canned else None


def _gate_checks(decision: Decision) -> list[Check]:
    # Refused after the scopes held: by the rate limits, or by the route's condition (its own line below).
    limited = decision.error in ("rate_limited", "rate_limit_unavailable", "condition_failed")
    needs = " ".join(decision.required_scopes) or "no scope"
    route = decision.route or ("public" if decision.public else "no route")
    gate = Check(
        "gate", f"{route}: needs {needs}", "refused" if not (decision.allowed or limited) else "passed"
    )
    checks = [gate]
    judged = decision.condition
    if judged is not None:  # the route's `when`, as the gate judged it
        checks.append(Check("condition", f"{judged.condition} = {judged.value}", _result(judged.passed)))
    if decision.rate_limit is not None:
        refused = decision.error in ("rate_limited", "rate_limit_unavailable")
        checks.append(Check("rate limits", decision.rate_limit.describe(), _result(not refused)))
    return checks


def _failed_condition(failed: ConditionFailed) -> Check:
    return Check("condition", f"{failed.condition} = {failed.value}", "refused")


def _result(passed: bool) -> Result:
    return "passed" if passed else "refused"


def after_the_gate(
    rt: Runtime, decision: Decision, request: Request, canned: Sequence[Canned] | None = None
) -> Explained:
    """Run what the proxied port runs after the gate's `decision`, up to the upstream; `canned` answers
    stand in for the upstream's, in the order the proxy would ask for them."""
    answered = decision_port_answer(rt, decision)
    port = DecisionPort(
        answered.rendered.status, answered.decision.error, answered.decision.allowed != decision.allowed
    )
    checks = _Checks(canned)
    checks.done.extend(_gate_checks(decision))
    explained = _carry_out(rt, decision, request, checks)
    explained.decision_port = port
    explained.unused = len(checks.canned or ())
    return explained


def _carry_out(rt: Runtime, decision: Decision, request: Request, checks: _Checks) -> Explained:
    if not decision.allowed:
        return Explained(decision, checks.done, render_denial(rt, decision, None), False)
    try:
        relayed = _stage(rt, decision, request, checks)
    except RequestRejected as refused:
        denied = deny(decision, refused)
        return Explained(denied, checks.done, render_denial(rt, denied, None, refused), False)
    except UpstreamError as failed:  # a failed owner lookup: nothing is forwarded
        return Explained(decision, checks.done, render_upstream_error(failed), False, failed=failed.code)
    if relayed is None and checks.canned and decision.stage is None:
        relayed = checks.answer()  # a plain forward: the upstream's answer reaches the client as it is
    forwarded = not isinstance(decision.stage, McpMetadata)
    return Explained(decision, checks.done, None, forwarded, relayed)


def _stage(rt: Runtime, decision: Decision, request: Request, checks: _Checks) -> Canned | None:
    """The checks of the decision's stage; the canned answer relayed, if any. Raises its refusal."""
    stage = decision.stage
    if isinstance(stage, ContentPlan):
        return _content(stage, request, checks)
    if isinstance(stage, McpMessages):
        _mcp(rt, decision, stage, request, checks)
    elif isinstance(stage, McpMetadata):
        checks.run(stage.label, stage.describe(), lambda: None)
    elif stage is not None:  # a listing, the /config roster, the WebSocket's messages: all read the answer
        checks.pending(stage.label, f"{stage.describe()} (needs the upstream)")
    return None


def _content(plan: ContentPlan, request: Request, checks: _Checks) -> Canned | None:
    def request_checks() -> tuple[str, Body | None]:
        return check_request(
            plan,
            request.method,
            request.target,
            request.body,
            request.headers.getall("Content-Type", ()),
            request.headers.getall("Content-Encoding", ()),
        )

    try:
        _, body = checks.run(plan.label, plan.describe(), request_checks)
    except ConditionFailed as failed:  # the route's `when` on the body: its expression and value
        checks.done.append(_failed_condition(failed))
        raise
    if plan.when is not None and body is not None:
        checks.done.append(Check("condition", f"{plan.when.condition.describe()} = true", "passed"))
    if plan.reads_body and request.body is None:
        checks.pending("request body", "its checks on the body need the body (--body, or a case's body:)")
    if plan.rule.owner is not None:
        _owner(plan, request, body, checks)
    if not plan.rule.response:
        return checks.answer()
    expected = "; ".join(f"{r.field} must be {plan.claim(r.claim)}" for r in plan.rule.response)
    answer = checks.answer()
    if answer is None:
        checks.pending("response check", f"a 2xx answer's {expected}")
        return None
    checks.run("response check", f"a 2xx answer's {expected}", lambda: check_answer(plan, *answer.pair))
    return answer


def _owner(plan: ContentPlan, request: Request, body: Body | None, checks: _Checks) -> None:
    """The owner lookup: its target (a template naming a field the request lacks refuses it), then its
    answer when one is canned; pending otherwise."""
    owner = plan.rule.owner
    assert owner is not None
    if plan.reads_body and request.body is None:
        checks.pending("owner lookup", f"GET {owner.target} (its templates need the body)")
        return
    lookup = checks.attempt(
        "owner lookup", f"GET {owner.target}", lambda: owner_lookup(plan, request.target, body)
    )
    assert lookup is not None  # the plan has an owner
    answer = checks.answer()
    if answer is None:
        checks.pending("owner lookup", lookup.describe())
        return
    checks.run("owner lookup", lookup.describe(), lambda: check_lookup_answer(lookup, *answer.pair))


def _mcp(rt: Runtime, decision: Decision, stage: McpMessages, request: Request, checks: _Checks) -> None:
    assert rt.mcp is not None  # a runtime without MCP has no MCP stage
    policy = rt.mcp
    checks.run("mcp method", "one of " + ", ".join(sorted(TRANSPORT)), lambda: check_method(request.method))
    if request.method != "POST":
        return
    if request.body is None:
        checks.pending(stage.label, f"{stage.describe()} (needs the body: --body, or a case's body:)")
        return
    data = request.body
    caller = Caller(frozenset(decision.scopes), decision.subject, decision.session_id, decision.claims or {})

    def messages() -> Post:
        try:
            content_type = refuse_encoding(
                request.headers.getall("Content-Type", ()), request.headers.getall("Content-Encoding", ())
            )
        except BadMessage as bad:
            raise post_refusal(bad) from None
        return check_post(policy, stage.site, caller, data, content_type, request.headers)

    try:
        post = checks.run(stage.label, stage.describe(), messages)
    except ConditionFailed as failed:  # a tool rule's `when`: its expression and value
        checks.done.append(_failed_condition(failed))
        raise
    for message in post.messages:  # every call ran its tool's condition, and each held
        when = stage.site.tool(message.tool).when if message.method == "tools/call" and message.tool else None
        if when is not None:
            checks.done.append(Check("condition", f"{when.describe()} = true", "passed"))
    if post.requests("tools/list"):
        checks.pending("tools/list answer", "cut to the tools the caller may call (needs the upstream)")
