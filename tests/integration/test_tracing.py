"""OpenTelemetry: `authproxy serve` with an OTLP endpoint in its environment exports, to a real OTLP/HTTP
receiver, one SERVER span per request continuing the caller's W3C trace, a child `authorize` span with the
route, decision and reason, and passes its own span upstream as the new parent. Never the token. With no
endpoint configured, OpenTelemetry is not even imported."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.rigs.serve import AUTHPROXY, ServeFactory, ServeProcess
from tests.rigs.upstream import RecordingUpstream

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    async with otlp_receiver() as running:
        yield running


def otel_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "authproxy-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms instead of 5 s
        **extra,
    }


@pytest.fixture
async def traced(
    tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes, serve: ServeFactory, receiver: OtlpReceiver
) -> ServeProcess:
    """`authproxy serve` in front of the recording upstream, exporting to the receiver."""
    config = tmp_path / "traced.yaml"
    config.write_text(config_text(upstream.url, hs_secret))
    return await serve(config, env=otel_env(receiver))


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


async def test_server_span_continues_the_callers_trace_with_a_decision_child_and_goes_upstream(
    traced: ServeProcess,
    upstream: RecordingUpstream,
    receiver: OtlpReceiver,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = traced
    bearer = token("proxy:use", sub="alice")
    caller = {
        "Authorization": f"Bearer {bearer}",
        "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01",
        "tracestate": "vendor=opaque",
    }
    async with client.get(proxy.url + "/items/7?secret=query", headers=caller) as resp:
        assert resp.status == 200
    await receiver.wait_for(lambda spans: bool(named(spans, "GET /**")) and bool(named(spans, "authorize")))

    [server] = named(receiver.spans, "GET /**")
    [decision] = named(receiver.spans, "authorize")
    assert (server.trace_id, server.parent_span_id, server.kind) == (TRACE_ID, CALLER_SPAN, SERVER_KIND)
    assert server.service == "authproxy-under-test"
    assert server.attributes == {
        "http.request.method": "GET",
        "url.path": "/items/7",  # never the query
        "client.address": "127.0.0.1",
        "http.route": "/**",
        "http.response.status_code": 200,
        "authproxy.outcome": "complete",
    }
    assert (decision.trace_id, decision.parent_span_id) == (TRACE_ID, server.span_id)
    assert decision.attributes == {
        "authproxy.decision": "allow",
        "authproxy.reason": "scopes satisfied",
        "authproxy.route": "* /**",
    }
    # The upstream sees our span as its parent, in the caller's trace, and the caller's tracestate.
    recorded = upstream.last()
    assert recorded.header("traceparent") == [f"00-{TRACE_ID}-{server.span_id}-01"]
    assert recorded.header("tracestate") == ["vendor=opaque"]
    assert all(bearer.encode() not in body and b"secret=query" not in body for body in receiver.raw)


async def test_a_denial_is_traced_with_its_reason_and_nothing_goes_upstream(
    traced: ServeProcess,
    upstream: RecordingUpstream,
    receiver: OtlpReceiver,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = traced
    bearer = token("proxy:use")
    async with client.get(proxy.url + "/private/x", headers={"Authorization": f"Bearer {bearer}"}) as resp:
        assert resp.status == 403
    await receiver.wait_for(lambda spans: len(spans) >= 2)
    [server] = named(receiver.spans, "GET /private/**")
    [decision] = named(receiver.spans, "authorize")
    assert server.parent_span_id == "" and decision.parent_span_id == server.span_id  # a new trace
    assert server.attributes["http.response.status_code"] == 403
    assert decision.attributes == {
        "authproxy.decision": "deny",
        "authproxy.reason": "insufficient scope for this route",
        "authproxy.error": "insufficient_scope",
        "authproxy.route": "GET /private/**",
    }
    assert upstream.requests == []
    assert all(bearer.encode() not in body for body in receiver.raw)


async def test_an_upstream_failure_marks_the_server_span_as_an_error(
    tmp_path: Path,
    hs_secret: bytes,
    serve: ServeFactory,
    receiver: OtlpReceiver,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    unused_tcp_port: int,
) -> None:
    config = tmp_path / "traced.yaml"
    config.write_text(config_text(f"http://127.0.0.1:{unused_tcp_port}", hs_secret))
    proxy = await serve(config, env=otel_env(receiver))
    async with client.get(
        proxy.url + "/x", headers={"Authorization": f"Bearer {token('proxy:use')}"}
    ) as resp:
        assert resp.status == 502
    await receiver.wait_for(lambda spans: bool(named(spans, "GET /**")))
    [server] = named(receiver.spans, "GET /**")
    assert server.status_code == 2  # STATUS_CODE_ERROR
    assert server.attributes["http.response.status_code"] == 502


async def test_an_unsupported_otlp_protocol_stops_the_start(
    tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes, receiver: OtlpReceiver
) -> None:
    config = tmp_path / "traced.yaml"
    config.write_text(config_text(upstream.url, hs_secret))
    env = {**os.environ, **otel_env(receiver, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"), "AUTHPROXY_WORKERS": "1"}
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY, "serve", "-c", str(config), env=env, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        stdout, _ = await process.communicate()
    assert process.returncode == 1
    assert b"OTLP protocol 'grpc' is not supported; use http/protobuf" in stdout


def test_with_tracing_off_opentelemetry_is_never_imported() -> None:
    probe = (
        "import os, sys\n"
        "from authproxy.serve.lifecycle import ProxyService\n"
        "from authproxy.serve.tracing import start_tracing\n"
        "assert start_tracing(os.environ) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
