"""The two small interfaces the request path calls when tracing is on (serve/tracing.py decides whether it
is, serve/otel.py implements them with OpenTelemetry). With tracing off a request pays one `is None` check
per hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from authproxy.policy.decision import Decision

__all__ = ["RequestTrace", "Tracing"]


class RequestTrace(Protocol):
    """One request's server span."""

    def decided(self, decision: Decision, seconds: float) -> None:
        """Record the gate's decision as a child span that ended now and lasted `seconds`."""

    def inject(self, headers: list[tuple[str, str]]) -> None:
        """Replace the trace headers going upstream with this span's (W3C traceparent/tracestate)."""

    def finish(self, status: int, outcome: str) -> None:
        """End the server span with the response status."""


class Tracing(Protocol):
    def begin(self, method: str, path: str, headers: Mapping[str, str], peer: str | None) -> RequestTrace:
        """Start a server span, continuing the caller's trace when its headers carry one."""

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: call it from a thread)."""
