"""The proxied port (a router-less aiohttp web.Server) and the admin application.

The proxied port serves nothing of its own: every request goes through the gate, then to the upstream or to
a rendered denial. The one broad `except` of the package lives here, as the outermost boundary.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict

from authproxy.errors import InvalidToken, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from authproxy.gate import authorize
from authproxy.logs import access_logger
from authproxy.mcp.exchange import Answered, McpExchange
from authproxy.policy.decision import Decision, ListingFilter
from authproxy.proxy.forward import Forwarder
from authproxy.proxy.listings import MAX_LISTING_BYTES, filter_listing, listing_request_headers
from authproxy.proxy.protocol import HEAD_TIMEOUT, ProxyServer
from authproxy.proxy.responses import Rendered, render_decision, render_error, render_upstream_error
from authproxy.proxy.websocket import is_websocket_upgrade, relay_websocket, valid_handshake
from authproxy.runtime import Runtime, RuntimeHolder

__all__ = [
    "AccessRecord",
    "Observer",
    "ProxyHandler",
    "ServiceState",
    "build_admin_app",
    "build_proxy_server",
]

READ_BUFSIZE = 256 * 1024


@dataclass(slots=True)
class AccessRecord:
    """What the access line (and any observer, such as metrics) learns about one request."""

    method: str
    path: str  # the raw path without the query: a query may carry anything, and is never logged
    status: int = 0
    decision: Decision | None = None
    upstream_status: int | None = None
    outcome: str = "answered"  # answered | complete | upstream_failed | client_gone | error
    latency_ms: float = 0.0
    decision_ms: float = 0.0  # the authorization decision alone
    upstream_error: str | None = None  # unavailable | timeout, when no answer came from the upstream
    detail: bool = True  # log the decision detail; denials always, allows as logging.allow_sample_rate says

    def fields(self) -> dict[str, object]:
        d = self.decision
        out: dict[str, object] = {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "decision": "none" if d is None else ("allow" if d.allowed else "deny"),
            "reason": None if d is None else d.reason,
            "route": None if d is None else d.route,
            "subject": None if d is None else d.subject,
            "latency_ms": round(self.latency_ms, 3),
            "upstream_status": self.upstream_status,
            "outcome": self.outcome,
        }
        if d is not None and d.jti is not None and self.detail:
            out["jti"] = d.jti
        if d is not None and not d.allowed:
            out.update(error=d.error, required_scopes=d.required_scopes, missing_scopes=d.missing_scopes)
        elif d is not None and self.detail and d.required_scopes:
            out["required_scopes"] = d.required_scopes
        return out


Observer = Callable[[AccessRecord], None]


def _respond(rendered: Rendered) -> web.Response:
    return web.Response(status=rendered.status, headers=CIMultiDict(rendered.headers), body=rendered.body)


def _sampled(rate: float) -> bool:
    # Sampling log detail, not a security decision: a fast non-cryptographic draw is right.
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311


def _mcp_answered(record: AccessRecord, answered: Answered) -> web.StreamResponse:
    record.decision, record.status, record.outcome = answered.decision, answered.status, answered.outcome
    record.upstream_status, record.upstream_error = answered.upstream_status, answered.upstream_error
    return answered.response


def _deny_identity(decision: Decision, bad: InvalidToken) -> Decision:
    return replace(decision, allowed=False, error="invalid_token", reason=bad.reason)


class ProxyHandler:
    """`handle(request)`: one runtime snapshot, the gate, then the upstream or a rendered denial."""

    def __init__(
        self, holder: RuntimeHolder, forwarder: Forwarder, observers: Iterable[Observer] = ()
    ) -> None:
        self._holder = holder
        self._forwarder = forwarder
        self._mcp = McpExchange(forwarder)
        self._observers = tuple(observers)
        self._log = access_logger()
        self.in_flight = 0  # read by metrics at scrape time
        self.websockets_open = 0

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        record = AccessRecord(request.method, request.raw_path.partition("?")[0])
        started = time.perf_counter()
        self.in_flight += 1
        try:
            return await self._handle(request, record)
        except asyncio.CancelledError:
            record.outcome = "client_gone"  # the client disconnected, or shutdown's grace ran out
            raise
        except Exception:  # noqa: BLE001 - the one outer boundary: a bug answers 500 or aborts, never hangs
            return self._fail(request, record)
        finally:
            self.in_flight -= 1
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._emit(record)

    async def _handle(self, request: web.BaseRequest, record: AccessRecord) -> web.StreamResponse:
        rt = self._holder.current  # read once: the whole request runs under this policy
        if rt.mcp is not None and rt.mcp.claims(request.method, request.raw_path):
            return _mcp_answered(record, await self._mcp.serve(request, rt, rt.mcp))  # per JSON-RPC message
        started = time.perf_counter()
        decision = record.decision = await authorize(rt, request.method, request.raw_path, request.headers)
        record.decision_ms = (time.perf_counter() - started) * 1000
        if not decision.allowed:
            return self._answer(record, render_decision(decision))
        record.detail = _sampled(rt.config.logging.allow_sample_rate)
        websocket = is_websocket_upgrade(request.method, request.headers)
        if websocket and not valid_handshake(request):
            return self._answer(record, render_error(400, "bad_request", "malformed websocket handshake"))
        try:
            headers = rt.header_plan.upstream_headers(
                request.headers, decision, peer=request.remote, proto=request.scheme, websocket=websocket
            )
        except InvalidToken as bad:
            record.decision = _deny_identity(decision, bad)
            return self._answer(record, render_decision(record.decision))
        try:
            if decision.listing is not None:
                return await self._filtered_listing(request, rt, headers, record, decision.listing)
            if websocket:
                return await self._relay_websocket(request, rt, headers, record)
            return await self._forward(request, rt, headers, record)
        except UpstreamError as error:
            record.upstream_status = None  # no answer from the upstream (or a refused upgrade)
            record.upstream_error = "timeout" if isinstance(error, UpstreamTimeout) else "unavailable"
            return self._answer(record, render_upstream_error(error))

    async def _forward(
        self, request: web.BaseRequest, rt: Runtime, headers: list[tuple[str, str]], record: AccessRecord
    ) -> web.StreamResponse:
        if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= HttpVersion11:
            # Sent only now, after authorization: a denied client never uploads its body.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        relayed = await self._forwarder.forward(request, rt.config.upstream, headers)
        record.status = record.upstream_status = relayed.upstream_status
        record.outcome = relayed.outcome
        return relayed.response

    async def _filtered_listing(
        self,
        request: web.BaseRequest,
        rt: Runtime,
        headers: list[tuple[str, str]],
        record: AccessRecord,
        listing: ListingFilter,
    ) -> web.StreamResponse:
        status, upstream_headers, body = await self._forwarder.fetch_bounded(
            request, rt.config.upstream, listing_request_headers(headers), MAX_LISTING_BYTES
        )
        record.upstream_status = status
        if status == 200:
            if upstream_headers.get("Content-Encoding", "identity").lower() != "identity":
                raise UpstreamUnavailable("the listing response is compressed and cannot be filtered")
            body = filter_listing(body, listing)
        upstream_headers.popall("Content-Length", None)
        upstream_headers.popall("Transfer-Encoding", None)
        record.status = status
        record.outcome = "complete"
        return web.Response(status=status, headers=upstream_headers, body=body)

    async def _relay_websocket(
        self, request: web.BaseRequest, rt: Runtime, headers: list[tuple[str, str]], record: AccessRecord
    ) -> web.StreamResponse:
        record.status = record.upstream_status = 101
        self.websockets_open += 1
        try:
            response = await relay_websocket(request, self._forwarder, rt.config.upstream, headers)
        finally:
            self.websockets_open -= 1
        record.outcome = "complete"
        return response

    @staticmethod
    def _answer(record: AccessRecord, rendered: Rendered) -> web.Response:
        record.status = rendered.status
        return _respond(rendered)

    def _fail(self, request: web.BaseRequest, record: AccessRecord) -> web.StreamResponse:
        record.outcome = "error"
        self._log.exception("unhandled error", method=record.method, path=record.path)
        if request.writer.output_size == 0:
            return self._answer(record, render_error(500, "internal_error", "internal error"))
        # Bytes already went out: only an abort tells the client the answer is not whole.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _emit(self, record: AccessRecord) -> None:
        fields = record.fields()
        if record.status >= 500 or record.outcome == "upstream_failed":
            self._log.warning("request", **fields)
        else:
            self._log.info("request", **fields)
        for observe in self._observers:
            observe(record)


def build_proxy_server(handler: ProxyHandler, *, head_timeout: float = HEAD_TIMEOUT) -> web.Server:
    # ProxyServer: parser refusals answer our JSON (431/414/400), and a head must arrive within head_timeout.
    return ProxyServer(
        handler,
        head_timeout=head_timeout,
        handler_cancellation=True,  # a client that hangs up releases its upstream connection at once
        access_log=None,  # the handler writes the one access line itself
        auto_decompress=False,  # request bodies pass as sent, Content-Encoding included
        read_bufsize=READ_BUFSIZE,
    )


@dataclass(slots=True)
class ServiceState:
    """Lifecycle facts the admin port reports: set to draining when shutdown starts."""

    draining: bool = False


HOLDER = web.AppKey("holder", RuntimeHolder)
STATE = web.AppKey("state", ServiceState)


async def _healthz(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    runtime = request.app[HOLDER].current
    if not runtime.keys.ready:
        waiting = sorted({getattr(s, "url", "?") for _, s in runtime.remotes if not s.ready})
        return web.json_response({"status": "keys_not_ready", "waiting_for": waiting}, status=503)
    return web.json_response({"status": "ready"})


def build_admin_app(
    holder: RuntimeHolder, state: ServiceState, admin_routes: Iterable[web.AbstractRouteDef] = ()
) -> web.Application:
    """`/healthz`, `/readyz`, plus `admin_routes` (the extension point /metrics plugs into)."""
    app = web.Application()
    app[HOLDER] = holder
    app[STATE] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_routes(admin_routes)
    return app
