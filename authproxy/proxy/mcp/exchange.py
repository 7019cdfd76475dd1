"""The McpMessages stage: an allowed request to an MCP endpoint, then each JSON-RPC message, then upstream.

Order: the gate decides the HTTP request as for any route (a valid token, by the rule config/mcp.py adds);
then a POST body is read whole, bounded (413 over `mcp.max_body`), parsed (400 when it is not JSON-RPC),
and every `tools/call` in it is checked against the tool table. Only then does anything reach the upstream.
A refusal is raised as a RequestRejected whose body is the JSON-RPC error object; the proxied port renders
it through the one table (answers/table.py), as every refusal.
GET (the server's SSE stream) and DELETE (end of session) stream through untouched once the gate allowed
them; `Mcp-Session-Id` and every other header pass as on any route.

A denied `tools/call` is answered 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
scope="…", resource_metadata="…"` and a JSON-RPC error body carrying the request's id. The MCP
authorization spec ("Scope Challenge Handling") asks exactly this of a resource server whose token lacks
a scope, and the official SDK client acts on both halves: its OAuth flow re-authorizes for the named scope
on that 403, and without OAuth it surfaces the JSON-RPC error in the body as the call's error. Agno's own
answer (a 200 tool result with isError and "Insufficient permissions") would tell a client nothing it
can act on, and would mean running the tool layer for a call that must not reach the upstream.

The checks of the method and of a POST's messages are proxy/mcp/messages.py's, the ones `authproxy explain`
and `authproxy test` run; here they are carried out around the read of the body.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict

from authproxy.errors import (
    MalformedBody,
    PayloadTooLarge,
    RequestRejected,
    UpstreamError,
    UpstreamUnavailable,
)
from authproxy.policy.decision import Decision
from authproxy.policy.mcp.endpoints import McpPolicy, McpSite
from authproxy.policy.roster import roster_filter
from authproxy.policy.stages import McpMessages
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.forward import Forwarder, Relayed, UpstreamAnswer, read_body, streamed_body
from authproxy.proxy.headers import response_headers, with_own_body, without_token
from authproxy.proxy.listings import filtered_answer_headers, filtered_request_headers
from authproxy.proxy.mcp.jsonrpc import BadMessage, Post
from authproxy.proxy.mcp.listing import MAX_EVENT_BYTES, EventFilter, filter_json
from authproxy.proxy.mcp.messages import (
    Caller,
    check_method,
    check_post,
    post_refusal,
    refuse_encoding,
    too_large,
)
from authproxy.proxy.mcp.results import ResultCut, roster_cut
from authproxy.runtime import Runtime
from authproxy.standards.media import Unreadable, parse_media_type

__all__ = ["McpExchange"]


class McpExchange:
    """Carries out the McpMessages stage of an allowed request to an MCP endpoint."""

    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    async def carry_out(
        self,
        request: ClientExchange,
        rt: Runtime,
        stage: McpMessages,
        decision: Decision,
        headers: list[tuple[str, str]],
    ) -> tuple[Relayed, RequestRejected | None]:
        """The relayed answer, and in dry run the refusal we would have answered (the messages then go as the
        client sent them); raises RequestRejected (a refused message or body) / UpstreamError."""
        assert rt.mcp is not None  # a runtime without MCP has no MCP stage
        check_method(request.method)
        if not rt.mcp.config.forward_token:
            # MCP authorization, "Access Token Privilege Restriction": a token minted for this resource is
            # not passed through to the server behind it, which trusts the identity headers instead.
            headers = without_token(headers, rt.config.jwt)
        call = _Call(self._forwarder, request, rt, rt.mcp, stage.site, decision, headers)
        if request.method == "GET" and "Last-Event-ID" in request.headers:
            # A resumed stream may replay a tools/list answer: filtered by its shape (listing.py).
            return await call.filtered(None, None), None
        if request.method != "POST":
            return await call.relay(None), None
        return await call.post(dry_run=rt.config.policy.dry_run)


@dataclass(slots=True)
class _Call:
    """One allowed request to an MCP endpoint."""

    forwarder: Forwarder
    request: ClientExchange
    rt: Runtime
    policy: McpPolicy
    site: McpSite
    decision: Decision
    headers: list[tuple[str, str]]  # for the upstream
    results: Mapping[object, ResultCut] = field(default_factory=dict)  # tools/call id -> cut of its result

    async def post(self, *, dry_run: bool) -> tuple[Relayed, RequestRejected | None]:
        headers = self.request.headers
        try:
            content_type = refuse_encoding(
                headers.getall("Content-Type", ()), headers.getall("Content-Encoding", ())
            )
            data = await _read_bounded(self.request, self.policy.config.max_body)
        except BadMessage as bad:
            raise post_refusal(bad) from None
        decision = self.decision
        caller = Caller(
            frozenset(decision.scopes), decision.subject, decision.session_id, decision.claims or {}
        )
        try:
            post = check_post(self.policy, self.site, caller, data, content_type, headers)
        except RequestRejected as refused:
            if not dry_run:
                raise
            # Dry run: the upstream decides, so it gets the messages as the client sent them (no pin written
            # in, nothing re-encoded); the refusal is what the access line says we would have answered.
            return await self.relay(data), refused
        return await self.checked(post, caller), None

    async def checked(self, post: Post, caller: Caller) -> Relayed:
        # What goes upstream is the proxy's own encoding of the messages it checked, never the client's bytes.
        self.headers = with_own_body(self.headers, "application/json")
        body = post.encode()
        listings = post.requests("tools/list")
        self.results = _result_cuts(self.policy, self.site, caller, post)
        if not listings and not self.results:
            return await self.relay(body)
        return await self.filtered(body, [m.id for m in listings])

    async def relay(self, body: bytes | None) -> Relayed:
        return await self.forwarder.forward(self.request, self.rt.config.upstream, self.headers, body=body)

    async def filtered(self, body: bytes | None, ids: Collection[object] | None) -> Relayed:
        granted = frozenset(self.decision.scopes)

        def listed(name: str) -> bool:
            return self.policy.listed(self.site, name, granted)

        headers = filtered_request_headers(self.headers)
        sent = body if body is not None else await streamed_body(self.request)
        upstream = self.rt.config.upstream
        async with self.forwarder.send(
            upstream, self.request.method, self.request.raw_path, headers, sent
        ) as answer:
            out_headers = filtered_answer_headers(response_headers(answer.headers))
            if answer.compressed:  # an event stream is filtered as it passes: refused before a byte is read
                raise UpstreamUnavailable("the MCP answer is compressed and cannot be filtered")
            framing = _framing(answer)
            if framing == "text/event-stream":
                events = EventFilter(ids, listed, status=answer.status, results=self.results)
                return await _stream_events(self.request, answer, out_headers, events)
            payload = await answer.read_whole(MAX_EVENT_BYTES)
            if framing == "application/json":
                payload = filter_json(payload, ids, listed, status=answer.status, results=self.results)
            elif payload:
                # Clients pick JSON or SSE by a prefix of the type (`application/json-rpc` reads as JSON to
                # the official SDK): an answer of any other type cannot be shown to hold no tool list.
                raise UpstreamUnavailable("the MCP answer's media type is neither JSON nor SSE")
            await self.request.respond(answer.status, out_headers.items(), payload)
            return Relayed(answer.status, "complete")


def _result_cuts(policy: McpPolicy, site: McpSite, caller: Caller, post: Post) -> dict[object, ResultCut]:
    """The calls of the POST whose results the upstream narrows per caller, each with the cut that narrows
    it the same way (results.py); none when the caller sees the whole roster."""
    calls = [m for m in post.requests("tools/call") if m.tool in site.roster_tools]
    roster = roster_filter(caller.scopes, policy.admin_scope) if calls else None
    if roster is None:
        return {}
    cut = roster_cut(roster)
    return {m.id: cut for m in calls}


async def _read_bounded(request: ClientExchange, limit: int) -> bytes:
    """The whole request body (forward.read_body), its refusals in MCP's words: JSON-RPC errors follow."""
    try:
        return await read_body(request, limit)
    except PayloadTooLarge:
        raise too_large(limit) from None
    except MalformedBody:  # compressed
        raise BadMessage("a compressed MCP request cannot be checked; send it uncompressed") from None


def _framing(answer: UpstreamAnswer) -> str | None:
    """`application/json` or `text/event-stream` when the answer's Content-Type is exactly one of them."""
    try:
        essence = parse_media_type(answer.headers.get("Content-Type", "")).essence
    except Unreadable:
        return None
    return essence if essence in ("application/json", "text/event-stream") else None


async def _stream_events(
    request: ClientExchange, answer: UpstreamAnswer, headers: CIMultiDict[str], events: EventFilter
) -> Relayed:
    try:
        await request.start(answer.status, headers.items(), answer.reason or None)
        async for chunk in answer.chunks():
            await request.write(events.feed(chunk))
        await request.finish(events.close())
    except UpstreamError:
        request.abort()  # a stream we cannot filter must not look complete
        return Relayed(answer.status, "upstream_failed")
    except ConnectionError:
        return Relayed(answer.status, "client_gone")
    return Relayed(answer.status, "complete")
