"""Whether this process traces, decided from the standard OpenTelemetry environment, and how it starts.
Nothing here imports OpenTelemetry: with tracing off (the default) the packages are never loaded and a
request pays one `is None` check per hook of proxy/trace.py.

Tracing is on when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
Everything else (service name, resource attributes, sampler, headers, timeouts, batching) is read by the
OpenTelemetry SDK from its own `OTEL_*` variables.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from authproxy.proxy.trace import RequestTrace, Tracing

__all__ = [
    "RequestTrace",
    "Tracing",
    "TracingUnavailable",
    "check_tracing",
    "start_tracing",
    "tracing_wanted",
]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_PACKAGES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")  # what authproxy[otel] adds


class TracingUnavailable(Exception):
    """Tracing is asked for but cannot run (the `otel` extra is missing, or an unsupported protocol)."""


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


def check_tracing(environ: Mapping[str, str]) -> bool:
    """Whether tracing is on; raises TracingUnavailable when it is asked for but cannot run. Creates
    nothing, so a supervisor can refuse a bad setting before it starts any worker."""
    if not tracing_wanted(environ):
        return False
    protocol = next((environ[name].strip() for name in _PROTOCOLS if environ.get(name, "").strip()), None)
    if protocol not in (None, "http/protobuf"):
        raise TracingUnavailable(f"OTLP protocol {protocol!r} is not supported; use http/protobuf")
    for module in _PACKAGES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise TracingUnavailable(
                f"an OTLP endpoint is set but {module} is not installed; install authproxy[otel]"
            )
    return True


def start_tracing(environ: Mapping[str, str]) -> Tracing | None:
    """The process's tracing, or None when it is off. Raises TracingUnavailable when it cannot start."""
    if not check_tracing(environ):
        return None
    try:
        # Loaded only here: the packages are an optional extra and cost nothing when tracing is off.
        from authproxy.serve.otel import OtelTracing
    except ImportError as missing:
        raise TracingUnavailable(
            f"an OTLP endpoint is set but OpenTelemetry is not installed ({missing.name}); "
            "install authproxy[otel]"
        ) from missing
    return OtelTracing.from_environment()
