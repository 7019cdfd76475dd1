"""Tracing with the OpenTelemetry SDK, exported over OTLP/HTTP (imported only when tracing is on).

Per request: a SERVER span (continuing the caller's W3C trace context), a child `authorize` span with the
route, decision and reason, and the span's context injected into the upstream request. Attributes come
from bounded, non-secret values: the route pattern, the gate's fixed reason phrases, the path without its
query. Never a header value, a token or a claim.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from authproxy import __version__
from authproxy.policy.decision import Decision

__all__ = ["OtelTracing"]

_SCOPE = "authproxy"


class _RequestTrace:
    __slots__ = ("_context", "_method", "_route", "_span", "_tracer")

    def __init__(self, tracer: Tracer, span: Span, method: str) -> None:
        self._tracer = tracer
        self._span = span
        self._context: Context = set_span_in_context(span)
        self._method = method
        self._route: str | None = None

    def decided(self, decision: Decision, seconds: float) -> None:
        end = time.time_ns()
        attributes: dict[str, str] = {
            "authproxy.decision": "allow" if decision.allowed else "deny",
            "authproxy.reason": decision.reason,
        }
        if decision.route is not None:
            attributes["authproxy.route"] = decision.route  # as written: "GET /agents/{agent_id}"
            self._route = decision.route.rpartition(" ")[2]  # the path template alone, as http.route is
        if decision.error is not None:
            attributes["authproxy.error"] = decision.error
        span = self._tracer.start_span(
            "authorize", self._context, start_time=end - int(seconds * 1e9), attributes=attributes
        )
        span.end(end_time=end)

    def inject(self, headers: list[tuple[str, str]]) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, self._context)
        replaced = {name.lower() for name in carrier} | {"traceparent", "tracestate"}
        headers[:] = [(name, value) for name, value in headers if name.lower() not in replaced]
        headers.extend(carrier.items())

    def finish(self, status: int, outcome: str) -> None:
        span = self._span
        if self._route is not None:
            span.update_name(f"{self._method} {self._route}")
            span.set_attribute("http.route", self._route)
        if status:
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("authproxy.outcome", outcome)
        if status >= 500 or outcome in ("upstream_failed", "error"):
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class OtelTracing:
    """A TracerProvider with a batching OTLP/HTTP exporter; both read their settings from `OTEL_*`."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(_SCOPE, __version__)

    @classmethod
    def from_environment(cls) -> OtelTracing:
        # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; else the name is "authproxy".
        resource = Resource.create({"service.version": __version__})
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": _SCOPE}))
        provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def begin(self, method: str, path: str, headers: Mapping[str, str], peer: str | None) -> _RequestTrace:
        parent = propagate.extract(headers)
        attributes: dict[str, str] = {"http.request.method": method, "url.path": path}
        if peer is not None:
            attributes["client.address"] = peer
        span = self._tracer.start_span(method, parent, kind=SpanKind.SERVER, attributes=attributes)
        return _RequestTrace(self._tracer, span, method)

    def shutdown(self) -> None:
        self._provider.shutdown()
