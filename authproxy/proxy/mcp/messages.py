"""The McpMessages stage's checks of one request, as pure functions: the one implementation that the proxied
port (proxy/mcp/exchange.py) carries out around its read of the body, and that `authproxy explain` and
`authproxy test` run on a body given to them, so the three refuse alike, JSON-RPC error bodies included.

Order: the method; then, for a POST, the body's encoding and media type, its bound (`mcp.max_body`), its
strict reading as JSON-RPC, and every `tools/call` in it against the endpoint's tool rules and pins.
A refusal is a RequestRejected whose body is the JSON-RPC error object the proxy answers with.

A batch with any denied call is refused whole (403, one JSON-RPC error per request in it): the HTTP answer
has one status, so a partly forwarded batch could not carry the step-up challenge, and nothing in a batch
runs unless all of it may run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from authproxy.errors import (
    BadItemId,
    ConditionFailed,
    InsufficientScope,
    MalformedBody,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestRejected,
)
from authproxy.policy.conditions import judge, tool_variables
from authproxy.policy.mcp.endpoints import McpPolicy, McpSite
from authproxy.policy.mcp.tools import ToolVerdict
from authproxy.proxy.mcp.jsonrpc import (
    FORBIDDEN,
    INVALID_PARAMS,
    INVALID_REQUEST,
    BadMessage,
    Id,
    Post,
    error_object,
    parse_post,
    set_arguments,
)
from authproxy.proxy.mcp.routing import Headers, check_routing
from authproxy.standards.http import identity_only

__all__ = [
    "TRANSPORT",
    "Caller",
    "check_method",
    "check_post",
    "post_refusal",
    "refuse_encoding",
    "too_large",
]

_NOT_RUN = "not run: another call in this batch was refused"
TRANSPORT = frozenset({"GET", "HEAD", "POST", "DELETE", "OPTIONS"})  # Streamable HTTP, and CORS preflight


@dataclass(frozen=True, slots=True)
class Caller:
    """What the message checks read of the gate's allow."""

    scopes: frozenset[str]
    subject: str | None
    session_id: str | None
    claims: Mapping[str, Any] = field(default_factory=dict)  # for a tool rule's `when`


def check_method(method: str) -> None:
    """Only POST carries messages, and only a POST body is checked: no other method may carry one."""
    if method not in TRANSPORT:
        allow = (("Allow", ", ".join(sorted(TRANSPORT))),)
        raise MethodNotAllowed("an MCP endpoint takes GET, POST and DELETE", headers=allow)


def refuse_encoding(content_types: Sequence[str], content_encodings: Sequence[str]) -> str:
    """The POST's one Content-Type ("" when none); BadMessage for a compressed body or a repeated type."""
    if len(content_types) > 1:
        raise BadMessage("the request gives Content-Type more than once")
    if not identity_only(content_encodings):
        raise BadMessage("a compressed MCP request cannot be checked; send it uncompressed")
    return content_types[0] if content_types else ""


def too_large(limit: int) -> BadMessage:
    return _TooLarge(f"the MCP request body is larger than {limit} bytes")


def post_refusal(bad: BadMessage | BadItemId) -> RequestRejected:
    """A POST the proxy cannot read as JSON-RPC messages: answered with a JSON-RPC error of its own."""
    if isinstance(bad, BadItemId):
        bad = BadMessage(bad.reason, INVALID_PARAMS)
    if isinstance(bad, _TooLarge):
        document = error_object(None, INVALID_REQUEST, bad.reason, {"error": PayloadTooLarge.code})
        return PayloadTooLarge(bad.reason, body=document)
    document = error_object(None, bad.rpc_code, bad.reason, {"error": MalformedBody.code})
    return MalformedBody(bad.reason, body=document)


def check_post(
    policy: McpPolicy,
    site: McpSite,
    caller: Caller,
    data: bytes,
    content_type: str,
    routing: Headers | None = None,
) -> Post:
    """The POST's messages, checked, their pinned arguments written in: what goes upstream is `encode()` of
    it. Raises the stage's refusal (MalformedBody, HeaderMismatch, PayloadTooLarge, InsufficientScope), its
    body the JSON-RPC error the proxy answers with. `routing`: the request's headers, whose routing headers
    must agree with the body (routing.py) before any call in it is judged."""
    try:
        if len(data) > policy.config.max_body:  # the proxied port stops reading here already
            raise too_large(policy.config.max_body)
        post = parse_post(data, content_type)
        if routing is not None:
            check_routing(routing, post)
        pinned = _check_calls(policy, site, caller, post)
    except (BadMessage, BadItemId) as bad:
        raise post_refusal(bad) from None
    set_arguments(post, pinned)
    return post


class _TooLarge(BadMessage):
    """The POST body is over `mcp.max_body`."""


def _check_calls(policy: McpPolicy, site: McpSite, caller: Caller, post: Post) -> list[tuple[int, str, str]]:
    """The argument pins to write into the POST; InsufficientScope, with one JSON-RPC error per request
    as its body, when any call in it is refused for its scopes or pins, else ConditionFailed when a call's
    `when` is not true."""
    refusals = _Refusals()
    pinned: list[tuple[int, str, str]] = []
    for index, message in enumerate(post.messages):
        if message.kind != "request":
            continue
        if message.method == "tools/call" and message.tool is not None:
            call = (index, message.tool, message.arguments)
            verdict = policy.check(site, message.tool, message.arguments, caller.scopes)
            if verdict.allowed:
                # A refused batch runs none of it: its challenge names what every call in it needs.
                refusals.required.update(dict.fromkeys(verdict.required))
                verdict = _pin(policy, site, caller, call, pinned)
            if not verdict.allowed:
                refusals.scopes(message.id, message.tool, verdict)
                continue
            failed = _condition(site, caller, call, pinned)
            if failed is not None:
                refusals.condition(message.id, message.tool, failed)
                continue
        refusals.errors.append(error_object(message.id, FORBIDDEN, _NOT_RUN, {}))
    refusals.raise_any(post.batch)
    return pinned


@dataclass(slots=True)
class _Refusals:
    """The JSON-RPC errors of one POST's requests, and what its one HTTP refusal says."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    required: dict[str, None] = field(default_factory=dict)
    missing: dict[str, None] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    failed: list[ConditionFailed] = field(default_factory=list)

    def scopes(self, ident: Id | None, tool: str, verdict: ToolVerdict) -> None:
        data = {
            "error": InsufficientScope.code,
            "tool": tool,
            "reason": verdict.reason,
            "required_scopes": list(verdict.required),
            "missing_scopes": list(verdict.missing),
        }
        self.errors.append(error_object(ident, FORBIDDEN, _insufficient(verdict.required), data))
        self.required.update(dict.fromkeys(verdict.required))
        self.missing.update(dict.fromkeys(verdict.missing))
        self.reasons.append(f"tool {tool!r}: {verdict.reason}")

    def condition(self, ident: Id | None, tool: str, failed: ConditionFailed) -> None:
        # As the other per-tool refusals, with the condition's code; the expression is not told.
        data = {"error": ConditionFailed.code, "tool": tool, "reason": failed.reason}
        self.errors.append(error_object(ident, FORBIDDEN, failed.reason, data))
        self.failed.append(failed)

    def raise_any(self, batch: bool) -> None:
        if not self.reasons and not self.failed:
            return
        # One code for the whole answer: a scope refusal (with its challenge) outranks a condition's.
        code = InsufficientScope.code if self.reasons else ConditionFailed.code
        for error in self.errors:
            if error["error"]["message"] == _NOT_RUN:
                error["error"]["data"]["error"] = code
        refused = [e for e in self.errors if e["error"]["message"] != _NOT_RUN]
        document: Any = self.errors if batch else refused[0]
        if self.reasons:
            reason = "; ".join(self.reasons)
            raise InsufficientScope(reason, tuple(self.required), tuple(self.missing), body=document)
        first = self.failed[0]
        raise ConditionFailed(first.reason, first.condition, first.value, body=document)


def _condition(
    site: McpSite, caller: Caller, call: tuple[int, str, dict[str, Any]], pinned: list[tuple[int, str, str]]
) -> ConditionFailed | None:
    """The tool rule's `when` judged on the call's arguments as the upstream receives them (pins written
    in); the admin scope does not skip it. The refusal, or None when it holds or the rule has none."""
    index, tool, arguments = call
    when = site.tool(tool).when
    if when is None:
        return None
    sent = {**arguments, **{name: value for at, name, value in pinned if at == index}}
    try:
        judge(when, tool_variables(when, caller.claims, tool, sent))
    except ConditionFailed as refused:
        return refused
    return None


def _pin(
    policy: McpPolicy,
    site: McpSite,
    caller: Caller,
    call: tuple[int, str, dict[str, Any]],
    pinned: list[tuple[int, str, str]],
) -> ToolVerdict:
    """Hold the tool's pinned arguments to the caller's own id (a missing one is set, another refused)."""
    index, tool, arguments = call
    admin = policy.admin_scope
    if admin is not None and admin in caller.scopes:
        return ToolVerdict(True, "admin scope")
    for name, field_name in site.tool(tool).pins:
        own = caller.subject if field_name == "user_id" else caller.session_id
        given = arguments.get(name)
        if own is None or (given is not None and given != own):
            needed = (admin,) if admin is not None else ()
            reason = f"arguments.{name} must be the caller's own {field_name}"
            return ToolVerdict(False, reason, needed, needed)
        if given is None:
            pinned.append((index, name, own))
    return ToolVerdict(True, "scopes satisfied")


def _insufficient(required: tuple[str, ...]) -> str:
    # Agno's wording, so a client reading the message sees what AgentOS itself would say.
    return (
        f"Insufficient permissions. Required scope(s): {', '.join(required)}"
        if required
        else "Insufficient permissions"
    )
