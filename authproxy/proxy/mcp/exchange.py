"""One request to an MCP endpoint: the gate for the HTTP request, then each JSON-RPC message, then upstream.

Order: the gate decides the HTTP request as for any route (a valid token, by the rule config/mcp.py adds);
then a POST body is read whole, bounded (413 over `mcp.max_body`), parsed (400 when it is not JSON-RPC),
and every `tools/call` in it is checked against the tool table. Only then does anything reach the upstream.
GET (the server's SSE stream) and DELETE (end of session) stream through untouched once the gate allowed
them; `Mcp-Session-Id` and every other header pass as on any route.

A denied `tools/call` is answered 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="…", resource_metadata="…"` and a JSON-RPC error body carrying the request's id. The MCP
authorization spec ("Scope Challenge Handling") asks exactly this of a resource server whose token lacks
a scope, and the official SDK client acts on both halves: its OAuth flow re-authorizes for the named scope
on that 403, and without OAuth it surfaces the JSON-RPC error in the body as the call's error. Agno's own
answer (a 200 tool result with isError and "Insufficient permissions") would tell a client nothing it
can act on, and would mean running the tool layer for a call that must not reach the upstream.

A batch with any denied call is refused whole (403, one JSON-RPC error per request in it): the HTTP answer
has one status, so a partly forwarded batch could not carry the step-up challenge, and nothing in a batch
runs unless all of it may run.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from authproxy.errors import (
    BadItemId,
    ContentRejected,
    DenialCode,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from authproxy.gate import authorize
from authproxy.policy.decision import Decision
from authproxy.policy.mcp.endpoints import McpPolicy, McpSite
from authproxy.policy.mcp.tools import ToolVerdict
from authproxy.proxy.content import read_bounded
from authproxy.proxy.forward import Forwarder, UpstreamAnswer
from authproxy.proxy.headers import forwarded_headers, response_headers
from authproxy.proxy.listings import filtered_answer_headers, filtered_request_headers
from authproxy.proxy.mcp.discovery import metadata_document, metadata_url, with_resource_metadata
from authproxy.proxy.mcp.jsonrpc import (
    FORBIDDEN,
    INVALID_PARAMS,
    INVALID_REQUEST,
    BadMessage,
    Post,
    error_object,
    parse_post,
    set_arguments,
)
from authproxy.proxy.mcp.listing import MAX_EVENT_BYTES, EventFilter, filter_json
from authproxy.proxy.responses import (
    OwnAnswer,
    Rendered,
    render_answer,
    render_decision,
    render_upstream_error,
)
from authproxy.runtime import Runtime
from authproxy.standards.media import Unreadable, parse_media_type

__all__ = ["Answered", "McpExchange"]

_NOT_RUN = "not run: another call in this batch was refused"
_TRANSPORT = frozenset({"GET", "HEAD", "POST", "DELETE", "OPTIONS"})  # Streamable HTTP, and CORS preflight
_ENCODING_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})


class Answered:
    """What the exchange tells the access record: the decision, statuses and how the answer ended."""

    __slots__ = ("decision", "outcome", "response", "status", "upstream_error", "upstream_status")

    def __init__(self, response: web.StreamResponse, decision: Decision | None, status: int) -> None:
        self.response = response
        self.decision = decision
        self.status = status
        self.upstream_status: int | None = None
        self.upstream_error: str | None = None  # unavailable | timeout, when the upstream gave no answer
        self.outcome = "answered"


def _respond(rendered: Rendered, decision: Decision | None) -> Answered:
    response = web.Response(status=rendered.status, headers=CIMultiDict(rendered.headers), body=rendered.body)
    return Answered(response, decision, rendered.status)


def _jsonrpc(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> Rendered:
    body = json.dumps(document, separators=(",", ":")).encode()
    return Rendered(status, (("Content-Type", "application/json"), *headers), body)


class McpExchange:
    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    async def serve(self, request: web.BaseRequest, rt: Runtime, policy: McpPolicy) -> Answered:
        """The answer for a request `policy.claims`: to an MCP endpoint, or for its metadata."""
        site = policy.site_for(request.raw_path)
        if site is None:
            return _respond(metadata_document(policy, policy.metadata_site(request.raw_path), request), None)
        decision = await authorize(
            rt, request.method, request.raw_path, request.headers, consume=True, peer=request.remote
        )
        call = _Call(self._forwarder, request, rt, policy, site, decision)
        if not decision.allowed:
            return call.deny(decision)
        call.headers = forwarded_headers(
            rt.header_plan, request.headers, decision, peer=request.remote, proto=request.scheme
        )
        if request.method not in _TRANSPORT:
            # Only POST carries messages, and only a POST body is checked: no other method may carry one.
            refused = replace(decision, allowed=False, error="method_not_allowed", reason="not an MCP method")
            allow = ("Allow", ", ".join(sorted(_TRANSPORT)))
            rendered = render_answer(OwnAnswer.NOT_AN_MCP_METHOD)
            return _respond(replace(rendered, headers=(*rendered.headers, allow)), refused)
        try:
            if request.method == "GET" and "Last-Event-ID" in request.headers:
                # A resumed stream may replay a tools/list answer: filtered by its shape (listing.py).
                return await call.filtered(None, None)
            if request.method != "POST":
                return await call.relay(None)
            return await call.post()
        except UpstreamError as error:
            answered = _respond(render_upstream_error(error), decision)
            answered.upstream_error = "timeout" if isinstance(error, UpstreamTimeout) else "unavailable"
            return answered


@dataclass(slots=True)
class _Call:
    """One request to an MCP endpoint, once the gate has decided on it."""

    forwarder: Forwarder
    request: web.BaseRequest
    rt: Runtime
    policy: McpPolicy
    site: McpSite
    decision: Decision
    headers: list[tuple[str, str]] = field(default_factory=list)  # for the upstream

    def deny(self, decision: Decision) -> Answered:
        url = metadata_url(self.policy, self.site, self.request)
        rendered = render_decision(decision, preset=self.rt.config.policy.preset)
        return _respond(with_resource_metadata(rendered, url), decision)

    async def post(self) -> Answered:
        try:
            content_types = self.request.headers.getall("Content-Type", ())
            if len(content_types) > 1:
                raise BadMessage("the request gives Content-Type more than once")
            post = parse_post(
                await _read_bounded(self.request, self.policy.config.max_body),
                content_types[0] if content_types else "",
            )
            denial, pinned = self.check_calls(post)
        except BadItemId as bad:
            return self.malformed(BadMessage(bad.reason, INVALID_PARAMS))
        except BadMessage as bad:
            return self.malformed(bad)
        if denial is not None:
            return denial
        set_arguments(post, pinned)
        # What goes upstream is the proxy's own encoding of the messages it checked, never the client's bytes.
        self.headers = [(n, v) for n, v in self.headers if n.lower() not in _ENCODING_HEADERS]
        self.headers.append(("Content-Type", "application/json"))
        body = post.encode()
        listings = post.requests("tools/list")
        if not listings:
            return await self.relay(body)
        return await self.filtered(body, [m.id for m in listings])

    def malformed(self, bad: BadMessage) -> Answered:
        status = 413 if bad.rpc_code == _TOO_LARGE else 400
        error: DenialCode = "payload_too_large" if status == 413 else "bad_request"
        code = INVALID_REQUEST if status == 413 else bad.rpc_code
        document = error_object(None, code, bad.reason, {"error": error})
        refused = replace(self.decision, allowed=False, error=error, reason=bad.reason)
        return _respond(_jsonrpc(status, document), refused)

    def check_calls(self, post: Post) -> tuple[Answered | None, list[tuple[int, str, str]]]:
        """The refusal of the POST if any call in it is refused; else the argument pins to write into it."""
        granted = frozenset(self.decision.scopes)
        errors: list[dict[str, Any]] = []
        required: dict[str, None] = {}
        missing: dict[str, None] = {}
        reasons: list[str] = []
        pinned: list[tuple[int, str, str]] = []
        for index, message in enumerate(post.messages):
            if message.kind != "request":
                continue
            if message.method == "tools/call" and message.tool is not None:
                verdict = self.policy.check(self.site, message.tool, message.arguments, granted)
                if verdict.allowed:
                    verdict = self.pin(index, message.tool, message.arguments, granted, pinned)
                if not verdict.allowed:
                    text = _insufficient(verdict.required)
                    data = {
                        "error": "insufficient_scope",
                        "tool": message.tool,
                        "reason": verdict.reason,
                        "required_scopes": list(verdict.required),
                        "missing_scopes": list(verdict.missing),
                    }
                    errors.append(error_object(message.id, FORBIDDEN, text, data))
                    required.update(dict.fromkeys(verdict.required))
                    missing.update(dict.fromkeys(verdict.missing))
                    reasons.append(f"tool {message.tool!r}: {verdict.reason}")
                    continue
            errors.append(error_object(message.id, FORBIDDEN, _NOT_RUN, {"error": "insufficient_scope"}))
        if not reasons:
            return None, pinned
        denied = replace(
            self.decision,
            allowed=False,
            error="insufficient_scope",
            reason="; ".join(reasons),
            required_scopes=tuple(required),
            missing_scopes=tuple(missing),
        )
        challenge = self.deny(denied).response.headers["WWW-Authenticate"]
        refused = [e for e in errors if e["error"]["message"] != _NOT_RUN] if not post.batch else errors
        document: Any = errors if post.batch else refused[0]
        return _respond(_jsonrpc(403, document, (("WWW-Authenticate", challenge),)), denied), []

    def pin(
        self,
        index: int,
        tool: str,
        arguments: dict[str, Any],
        granted: frozenset[str],
        pinned: list[tuple[int, str, str]],
    ) -> ToolVerdict:
        """Hold the tool's pinned arguments to the caller's own id (a missing one is set, another refused)."""
        admin = self.policy.admin_scope
        if admin is not None and admin in granted:
            return ToolVerdict(True, "admin scope")
        for name, field_name in self.site.tool(tool).pins:
            own = self.decision.subject if field_name == "user_id" else self.decision.session_id
            given = arguments.get(name)
            if own is None or (given is not None and given != own):
                needed = (admin,) if admin is not None else ()
                return ToolVerdict(
                    False, f"arguments.{name} must be the caller's own {field_name}", needed, needed
                )
            if given is None:
                pinned.append((index, name, own))
        return ToolVerdict(True, "scopes satisfied")

    async def relay(self, body: bytes | None) -> Answered:
        relayed = await self.forwarder.forward(self.request, self.rt.config.upstream, self.headers, body=body)
        answered = Answered(relayed.response, self.decision, relayed.upstream_status)
        answered.upstream_status = relayed.upstream_status
        answered.outcome = relayed.outcome
        return answered

    async def filtered(self, body: bytes | None, ids: Collection[object] | None) -> Answered:
        granted = frozenset(self.decision.scopes)

        def listed(name: str) -> bool:
            return self.policy.listed(self.site, name, granted)

        headers = filtered_request_headers(self.headers)
        async with self.forwarder.answer(self.request, self.rt.config.upstream, headers, body) as answer:
            out_headers = filtered_answer_headers(response_headers(answer.headers))
            if answer.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise UpstreamUnavailable("the MCP answer is compressed and cannot be filtered")
            framing = _framing(answer)
            if framing == "text/event-stream":
                events = EventFilter(ids, listed, status=answer.status)
                return await _stream_events(self.request, answer, out_headers, events, self.decision)
            payload = await _read_answer(answer)
            if framing == "application/json":
                payload = filter_json(payload, ids, listed, status=answer.status)
            elif payload:
                # Clients pick JSON or SSE by a prefix of the type (`application/json-rpc` reads as JSON to
                # the official SDK): an answer of any other type cannot be shown to hold no tool list.
                raise UpstreamUnavailable("the MCP answer's media type is neither JSON nor SSE")
            response = web.Response(status=answer.status, headers=out_headers, body=payload)
            answered = Answered(response, self.decision, answer.status)
            answered.upstream_status = answer.status
            answered.outcome = "complete"
            return answered


_TOO_LARGE = 413  # BadMessage.rpc_code for a body over the bound (never a JSON-RPC code)


def _insufficient(required: tuple[str, ...]) -> str:
    # Agno's wording, so a client reading the message sees what AgentOS itself would say.
    return (
        f"Insufficient permissions. Required scope(s): {', '.join(required)}"
        if required
        else "Insufficient permissions"
    )


async def _read_bounded(request: web.BaseRequest, limit: int) -> bytes:
    """The whole request body, at most `limit` bytes; BadMessage(413) over it, read no further."""
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise BadMessage("a compressed MCP request cannot be checked; send it uncompressed")
    try:
        return await read_bounded(request, limit)
    except ContentRejected as over:
        raise BadMessage(f"the MCP request body is larger than {limit} bytes", _TOO_LARGE) from over


def _framing(answer: UpstreamAnswer) -> str | None:
    """`application/json` or `text/event-stream` when the answer's Content-Type is exactly one of them."""
    try:
        essence = parse_media_type(answer.headers.get("Content-Type", "")).essence
    except Unreadable:
        return None
    return essence if essence in ("application/json", "text/event-stream") else None


async def _read_answer(answer: UpstreamAnswer) -> bytes:
    body = bytearray()
    async for chunk in answer.chunks():
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            raise UpstreamUnavailable("the MCP answer is too large to filter")
    return bytes(body)


async def _stream_events(
    request: web.BaseRequest,
    answer: UpstreamAnswer,
    headers: CIMultiDict[str],
    events: EventFilter,
    decision: Decision,
) -> Answered:
    response = web.StreamResponse(status=answer.status, reason=answer.reason or None, headers=headers)
    await response.prepare(request)
    answered = Answered(response, decision, answer.status)
    answered.upstream_status = answer.status
    try:
        async for chunk in answer.chunks():
            out = events.feed(chunk)
            if out:
                await response.write(out)
        await response.write_eof(events.close())
    except UpstreamError:
        if request.transport is not None:
            request.transport.abort()  # a stream we cannot filter must not look complete
        answered.outcome = "upstream_failed"
        return answered
    except ConnectionError:
        answered.outcome = "client_gone"
        return answered
    answered.outcome = "complete"
    return answered
