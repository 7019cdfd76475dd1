"""Envoy's gRPC ext_authz service (`authz.grpc_listen`): a real Envoy, configured by the shipped
envoy-grpc.yaml, asks authproxy's Authorization/Check in front of the recording upstream. The answer is the
HTTP decision port's, carried as gRPC fields."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from yarl import URL

from tests.rigs.authz import ENGINE_DENIALS, IDENTITY, SPOOFED, AuthzFactory, RunningAuthz, fetch, presented
from tests.rigs.authz_engines import Engine, envoy
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream) -> RunningAuthz:
    return await start_authz(upstream.url, authz="authz:\n  grpc_listen: 127.0.0.1:0\n")


@pytest.fixture
async def engine(authz: RunningAuthz, upstream: RecordingUpstream, short_tmp: Path) -> AsyncIterator[Engine]:
    decisions = authz.service.decisions
    assert decisions is not None and decisions.grpc_address is not None
    upstream_address = ("127.0.0.1", URL(upstream.url).port or 0)
    async with envoy(short_tmp, upstream_address, decisions.grpc_address, "envoy-grpc.yaml") as running:
        yield running


@pytest.fixture
async def via(engine: Engine) -> AsyncIterator[aiohttp.ClientSession]:
    async with engine.session() as session:
        yield session


async def test_allowed_request_reaches_upstream_with_our_identity_and_unset_ones_removed(
    via: aiohttp.ClientSession, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    bearer = token("private:read", sub="alice", session_id="s-1")
    with structlog.testing.capture_logs() as logs:
        status, _, _ = await fetch(
            via, "GET", "/private/doc?q=%2F", {"Authorization": f"Bearer {bearer}", **SPOOFED}
        )
        assert status == 200
        status, _, _ = await fetch(
            via, "PUT", "/items", {"Authorization": f"Bearer {token('proxy:use')}", **SPOOFED}
        )
        assert status == 200
    first, second = upstream.requests
    assert first.raw_path == "/private/doc?q=%2F"
    assert [first.header(name) for name in IDENTITY] == [["alice"], ["s-1"], ["private:read"]]
    assert (second.method, second.raw_path) == ("PUT", "/items")
    assert [second.header(name) for name in IDENTITY] == [["user-1"], [], ["proxy:use"]]
    checks = [entry for entry in logs if entry.get("authz") == "envoy_grpc"]
    assert [(c["method"], c["path"], c["status"], c["decision"]) for c in checks] == [
        ("GET", "/private/doc", 200, "allow"),
        ("PUT", "/items", 200, "allow"),
    ]


@pytest.mark.parametrize(
    ("name", "method", "target", "kind"), ENGINE_DENIALS, ids=[d[0] for d in ENGINE_DENIALS]
)
async def test_denied_request_never_reaches_upstream_and_the_client_gets_our_answer(
    name: str,
    method: str,
    target: str,
    kind: str | None,
    via: aiohttp.ClientSession,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    headers = presented(kind, token)
    status, body, answer = await fetch(via, method, target, {**headers, **SPOOFED})
    async with client.request(method, URL(authz.url + target, encoded=True), headers=headers) as resp:
        want = resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")
    assert want[0] in (400, 401, 403)
    assert (status, body, answer.get("WWW-Authenticate")) == want
    assert answer["Content-Type"] == "application/json"
    assert upstream.requests == []


async def test_check_request_without_http_attributes_is_refused(authz: RunningAuthz) -> None:
    # A real gRPC client (grpclib, Envoy's generated messages) sending what no Envoy would: an empty check.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # envoy-data-plane's own, at import
        from envoy_data_plane.envoy.service.auth.v3 import AuthorizationAsyncStub, CheckRequest
    from grpclib.client import Channel

    assert authz.service.decisions is not None and authz.service.decisions.grpc_address is not None
    host, port = authz.service.decisions.grpc_address
    channel = Channel(host, port)
    try:
        response = await AuthorizationAsyncStub(channel).check(CheckRequest())
    finally:
        channel.close()
    assert response.status is not None and response.status.code == 3  # INVALID_ARGUMENT
    denied = response.denied_response
    assert denied is not None and denied.status is not None and int(denied.status.code) == 400
    assert json.loads(denied.body) == {
        "detail": "the check request carries no HTTP request",
        "error": "bad_request",
    }
