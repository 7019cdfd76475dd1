"""The proxied port's handler: each request of a ClientConnection (protocol.py), answered in order.

The proxied port serves nothing of its own: every request goes through the gate, then to the upstream or to
a rendered denial. It runs in the skeleton every port shares (proxy/frontend.py: timing, the one broad
`except`, the access line); what is its own here is the dispatch on the decision's stage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from authproxy.answers.denials import render_denial
from authproxy.answers.mcp_metadata import metadata_document
from authproxy.answers.table import OwnAnswer, Rendered, render_answer, render_upstream_error
from authproxy.errors import RequestRejected, UpstreamError, UpstreamTimeout
from authproxy.limits.headers import allowed_fields
from authproxy.policy.content.plan import ContentPlan
from authproxy.policy.decision import Decision, deny
from authproxy.policy.listing import ListingFilter
from authproxy.policy.roster import RosterFilter
from authproxy.policy.stages import McpMessages, McpMetadata
from authproxy.policy.ws_messages import MessageGrant
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.client_websocket import is_websocket_upgrade, valid_handshake
from authproxy.proxy.config_roster import MAX_CONFIG_BYTES, filter_config
from authproxy.proxy.content import run_content
from authproxy.proxy.forward import Forwarder, Relayed
from authproxy.proxy.frontend import AccessRecord, FrontEnd, Observer
from authproxy.proxy.headers import forwarded_headers
from authproxy.proxy.listings import (
    MAX_LISTING_BYTES,
    filter_listing,
    filtered_answer_headers,
    filtered_request_headers,
)
from authproxy.proxy.mcp.exchange import McpExchange
from authproxy.proxy.protocol import HEAD_TIMEOUT, Listener
from authproxy.proxy.trial import dry_run_passes
from authproxy.proxy.trial_content import body_touched, dry_run_checks, unverified_token
from authproxy.proxy.websocket import relay_websocket
from authproxy.runtime import Runtime, RuntimeHolder
from authproxy.tls import peer_subject

if TYPE_CHECKING:
    from authproxy.proxy.trace import RequestTrace, Tracing

__all__ = ["ProxyHandler", "build_listener"]


def _relayed(record: AccessRecord, relayed: Relayed) -> None:
    record.status = record.upstream_status = relayed.upstream_status
    record.outcome = relayed.outcome


class ProxyHandler:
    """`handle(request)`: one runtime snapshot, the gate, then the upstream or a rendered denial."""

    def __init__(
        self,
        holder: RuntimeHolder,
        forwarder: Forwarder,
        observers: Iterable[Observer] = (),
        tracing: Tracing | None = None,
    ) -> None:
        self._frontend = FrontEnd(holder, observers)
        self._tracing = tracing
        self._forwarder = forwarder
        self._mcp = McpExchange(forwarder)
        self.in_flight = 0  # read by metrics at scrape time
        self.websockets_open = 0

    async def handle(self, request: ClientExchange) -> None:
        record = AccessRecord(request.method, request.raw_path.partition("?")[0])
        self.in_flight += 1
        trace = None
        if self._tracing is not None:
            trace = self._tracing.begin(request.method, record.path, request.headers, request.remote)
        try:
            handle = partial(self._handle, request, record, trace)
            await self._frontend.serve(record, handle, partial(self._fail, request, record))
        finally:
            self.in_flight -= 1
            if trace is not None:
                trace.finish(record.status, record.outcome)

    async def _handle(
        self, request: ClientExchange, record: AccessRecord, trace: RequestTrace | None, rt: Runtime
    ) -> None:
        if rt.config.tls is not None and rt.config.tls.client_ca_file is not None:
            record.client_cert = peer_subject(request.ssl_object)
        decision = await self._frontend.decide(
            rt, record, request.method, request.raw_path, request.headers, peer=request.remote
        )
        if trace is not None:
            trace.decided(decision, record.decision_ms / 1000)
        if not self._passes(rt, record, decision):
            return await self._answer(request, record, render_denial(rt, decision, request))
        # on every answer from here on, over any upstream copy
        request.answer_headers = allowed_fields(decision.rate_limit)
        if isinstance(decision.stage, McpMetadata) and rt.mcp is not None and record.would is None:
            document = metadata_document(rt.mcp, decision.stage.site, request)
            return await self._answer(request, record, document)
        websocket = is_websocket_upgrade(request.method, request.headers)
        if websocket and not valid_handshake(request):
            return await self._answer(request, record, render_answer(OwnAnswer.BAD_WEBSOCKET_HANDSHAKE))
        headers = forwarded_headers(
            rt.header_plan,
            request.headers,
            decision,
            peer=request.remote,
            proto=request.scheme,
            websocket=websocket,
        )
        if record.would is not None and decision.subject is None:  # the upstream's own checks read it
            headers += unverified_token(rt.config, request.headers)
        if trace is not None:
            trace.inject(headers)
        try:
            return await self._carry_out(request, rt, headers, record, websocket)
        except RequestRejected as refused:  # a stage refused: a decision like any other, same table
            return await self._refused(request, rt, headers, record, deny(decision, refused), refused)
        except UpstreamError as error:
            record.upstream_status = None  # no answer from the upstream (or a refused upgrade)
            record.upstream_error = "timeout" if isinstance(error, UpstreamTimeout) else "unavailable"
            return await self._answer(request, record, render_upstream_error(error))

    @staticmethod
    def _passes(rt: Runtime, record: AccessRecord, decision: Decision) -> bool:
        """Allowed, or a refusal dry run forwards as the client sent it (noted as what we would answer)."""
        if decision.allowed:
            return True
        if dry_run_passes(rt.config.policy.dry_run, decision):
            record.would = decision
            return True
        return False

    async def _carry_out(
        self,
        request: ClientExchange,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        websocket: bool,
    ) -> None:
        """The allowed request's way upstream, the one place a decision's stage is dispatched on: streamed
        when it has none; raises RequestRejected when the stage refuses, UpstreamError."""
        decision = record.decision
        assert decision is not None
        # A would-be refusal in dry run carries out no stage: nothing verified grants what a stage needs.
        stage = decision.stage if record.would is None else None
        if isinstance(stage, ContentPlan) and rt.config.policy.dry_run:
            return await self._as_sent(request, rt, headers, record, stage)
        if isinstance(stage, ContentPlan):
            upstream = rt.config.upstream
            return _relayed(record, await run_content(request, stage, self._forwarder, upstream, headers))
        if isinstance(stage, McpMessages):
            relayed, would = await self._mcp.carry_out(request, rt, stage, decision, headers)
            if would is not None:  # dry run: a refused message went as sent; note what we would have answered
                record.decision = record.would = deny(decision, would)
            return _relayed(record, relayed)
        if isinstance(stage, ListingFilter):
            refine = partial(filter_listing, listing=stage)
            return await self._filtered(request, rt, headers, record, refine, MAX_LISTING_BYTES)
        if isinstance(stage, RosterFilter):
            refine = partial(filter_config, roster=stage)
            return await self._filtered(request, rt, headers, record, refine, MAX_CONFIG_BYTES)
        if websocket:
            grant = stage if isinstance(stage, MessageGrant) else None
            return await self._relay_websocket(request, rt, headers, record, grant)
        return _relayed(record, await self._forwarder.forward(request, rt.config.upstream, headers))

    async def _refused(
        self,
        request: ClientExchange,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        decision: Decision,
        refused: RequestRejected,
    ) -> None:
        record.decision = decision
        if rt.config.policy.dry_run and not body_touched(request):
            record.would = decision  # the request is whole still: it goes as the client sent it
            return await self._as_sent(request, rt, headers, record, None)
        return await self._answer(request, record, render_denial(rt, decision, request, refused))

    async def _as_sent(
        self,
        request: ClientExchange,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        plan: ContentPlan | None,
    ) -> None:
        """Dry run: the client's request forwarded as it came (target and body unchanged, never rewritten
        by a pin), after `plan`'s checks that need no upstream noted what we would have answered."""
        body = None
        if plan is not None:
            body, refused = await dry_run_checks(request, plan)
            if refused is not None and record.decision is not None:
                record.decision = record.would = deny(record.decision, refused)
        relayed = await self._forwarder.forward(request, rt.config.upstream, headers, None, body)
        return _relayed(record, relayed)

    async def _filtered(
        self,
        request: ClientExchange,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        refine: Callable[..., bytes],
        limit: int,
    ) -> None:
        """An answer read whole (at most `limit` bytes), cut to what the caller may see before it leaves.

        `refine(body, status=…)` cuts a 200 and passes any other status only when it holds nothing to cut.
        """
        # Bodiless: a listing is asked for by its target alone, whatever a client sent with it.
        fetched = await self._forwarder.fetch(
            rt.config.upstream,
            request.method,
            request.raw_path,
            filtered_request_headers(headers),
            None,
            limit,
        )
        record.upstream_status = status = fetched.status
        body = refine(fetched.body, status=status)
        record.status = status
        record.outcome = "complete"
        await request.respond(status, filtered_answer_headers(fetched.headers).items(), body)

    async def _relay_websocket(
        self,
        request: ClientExchange,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        grant: MessageGrant | None,
    ) -> None:
        record.status = record.upstream_status = 101
        self.websockets_open += 1
        try:
            await relay_websocket(request, self._forwarder, rt.config.upstream, headers, grant)
        finally:
            self.websockets_open -= 1
        record.outcome = "complete"

    @staticmethod
    async def _answer(request: ClientExchange, record: AccessRecord, rendered: Rendered) -> None:
        record.status = rendered.status
        try:
            await request.render(rendered)
        except ConnectionError:
            record.outcome = "client_gone"  # it left before its answer: nobody to tell, and not a bug of ours

    def _fail(self, request: ClientExchange, record: AccessRecord) -> None:
        if not request.started:
            record.status = 500
            with contextlib.suppress(ConnectionError):  # the client may be the one that went
                request.render_now(render_answer(OwnAnswer.INTERNAL_ERROR))
        else:
            request.abort()  # bytes already went out: only an abort tells the client the answer is not whole


def build_listener(handler: ProxyHandler, *, head_timeout: float = HEAD_TIMEOUT) -> Listener:
    """The proxied port's protocol factory: every request of every connection goes to `handler`."""
    return Listener(handler.handle, head_timeout=head_timeout)
