"""When tracing is on: an OTLP endpoint in the standard environment turns it on; OTEL_SDK_DISABLED and
OTEL_TRACES_EXPORTER=none turn it off again; only OTLP over HTTP/protobuf is offered."""

from __future__ import annotations

import importlib.util

import pytest

from authproxy.serve.tracing import TracingUnavailable, check_tracing, start_tracing, tracing_wanted

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "authproxy"}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
    ],
)
def test_tracing_is_wanted_only_with_an_endpoint(environ: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(environ) is wanted


def test_off_means_no_tracing_object() -> None:
    assert start_tracing({}) is None


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_grpc_is_refused_by_name(variable: str) -> None:
    with pytest.raises(TracingUnavailable, match="OTLP protocol 'grpc' is not supported"):
        start_tracing({**ENDPOINT, variable: "grpc"})


def test_a_missing_extra_is_named_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on an image built without authproxy[otel]: the SDK cannot be found.
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "opentelemetry.sdk" else real(name, *a)
    )
    missing = r"opentelemetry.sdk is not installed; install authproxy\[otel\]"
    with pytest.raises(TracingUnavailable, match=missing):
        check_tracing(ENDPOINT)
    assert check_tracing({}) is False
