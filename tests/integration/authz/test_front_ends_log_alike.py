"""The proxied port, the HTTP decision port and the gRPC service run each request in one skeleton: the same
access line, the same detail sampling (`logging.allow_sample_rate` for allows, denials always, a refusal
after the gate included) and the same levels (WARNING for a 5xx, INFO otherwise)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import pytest
import structlog
from yarl import URL

from tests.rigs.authz import AuthzFactory, RunningAuthz
from tests.rigs.config import BASE_ROUTES
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

PORTS = ("proxied", "decision", "grpc")
# A query pin: the proxied port refuses another user's id after the gate; the decision port cannot enforce
# the pin and refuses the allow (proxied_port_only). Either way a denial made after the gate.
PINNED = '    "GET /mine": {scopes: [proxy:use], pin: {query.user_id: user_id}}\n'

Ask = Callable[[str, str, dict[str, str]], Awaitable[tuple[int, Any]]]


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream) -> RunningAuthz:
    running = await start_authz(upstream.url, authz="authz:\n  grpc_listen: 127.0.0.1:0\n")
    text = running.config_path.read_text().replace(BASE_ROUTES, BASE_ROUTES + PINNED)
    text = text.replace("  format: json\n", "  format: json\n  allow_sample_rate: 0\n")
    running.config_path.write_text(text)
    assert await running.service.reloader.reload("test")
    return running


def asker(port: str, authz: RunningAuthz, client: aiohttp.ClientSession) -> Ask:
    async def http(url: str, method: str, headers: dict[str, str]) -> tuple[int, Any]:
        async with client.request(method, URL(url, encoded=True), headers=headers) as resp:
            return resp.status, await resp.read()

    async def ask(method: str, target: str, headers: dict[str, str]) -> tuple[int, Any]:
        if port == "proxied":
            return await http(authz.url + target, method, headers)
        if port == "decision":
            return await http(authz.authz_url + "/envoy" + target, method, headers)
        return await grpc_check(authz, method, target, headers)

    return ask


async def grpc_check(
    authz: RunningAuthz, method: str, target: str, headers: dict[str, str]
) -> tuple[int, Any]:
    """Envoy's CheckRequest for `method target`, sent by a real gRPC client (grpclib, Envoy's messages)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # envoy-data-plane's own, at import
        from envoy_data_plane.envoy.service.auth.v3 import (
            AttributeContext,
            AttributeContextHttpRequest,
            AttributeContextRequest,
            AuthorizationAsyncStub,
            CheckRequest,
        )
    from grpclib.client import Channel

    assert authz.service.decisions is not None and authz.service.decisions.grpc_address is not None
    http = AttributeContextHttpRequest(method=method, path=target, headers=headers)
    message = CheckRequest(attributes=AttributeContext(request=AttributeContextRequest(http=http)))
    channel = Channel(*authz.service.decisions.grpc_address)
    try:
        response = await AuthorizationAsyncStub(channel).check(message)
    finally:
        channel.close()
    denied = response.denied_response
    if denied is None or denied.status is None:
        return 200, b""
    return int(denied.status.code), denied.body


def request_line(logs: list[MutableMapping[str, Any]]) -> MutableMapping[str, Any]:
    [line] = [entry for entry in logs if entry["event"] == "request"]
    return line


@pytest.mark.parametrize("port", PORTS)
async def test_allows_are_sampled_and_every_denial_keeps_its_detail(
    port: str,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    ask = asker(port, authz, client)
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice', jti='jti-1')}"}
    with structlog.testing.capture_logs() as logs:
        assert (await ask("GET", "/items", bearer))[0] == 200
    allowed = request_line(logs)
    assert (allowed["decision"], allowed["log_level"], allowed["status"]) == ("allow", "info", 200)
    assert "jti" not in allowed and "required_scopes" not in allowed  # allow_sample_rate: 0
    with structlog.testing.capture_logs() as logs:
        status, body = await ask("GET", "/mine?user_id=bob", bearer)
    assert status == 403
    denied = request_line(logs)
    assert (denied["decision"], denied["log_level"], denied["status"]) == ("deny", "info", 403)
    assert denied["error"] == json.loads(body)["error"]
    assert denied["jti"] == "jti-1"  # a refusal after the gate is a denial: never sampled away
    if port != "proxied":
        assert denied["authz"] == ("envoy" if port == "decision" else "envoy_grpc")
    assert [r.raw_path for r in upstream.requests] == (["/items"] if port == "proxied" else [])


class _BrokenTable:
    """A route table with a bug in it: every port's outer boundary must still answer."""

    def match(self, method: str, segments: object) -> None:
        raise RuntimeError("a bug in route matching")


@pytest.mark.parametrize("port", PORTS)
async def test_a_bug_answers_500_logged_as_a_warning(
    port: str,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    holder = authz.service.holder
    holder.swap(dataclasses.replace(holder.current, table=_BrokenTable()))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        status, body = await asker(port, authz, client)("GET", "/items", {})
    assert (status, json.loads(body)) == (500, {"detail": "internal error", "error": "internal_error"})
    assert any(e["event"] == "unhandled error" and e["log_level"] == "error" for e in logs)
    line = request_line(logs)
    assert (line["outcome"], line["status"], line["log_level"]) == ("error", 500, "warning")
    assert upstream.requests == []
