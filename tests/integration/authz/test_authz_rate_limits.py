"""Rate limits on the decision ports: an allow carries the RateLimit fields a front end may pass to the client
(HTTP: in the 200's headers; gRPC: as response_headers_to_add), a refusal is the proxied port's 429, and
`key: client_ip` counts the client the front end saw, never its own address."""

from __future__ import annotations

import json
import warnings
from typing import Any

import aiohttp
import pytest

from tests.rigs.authz import FRONTENDS, AuthzFactory, ask
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

LIMITS = 'rate_limits:\n  routes:\n    "GET /private/**": {rate: 2/hour, burst: 2}\n'
POLICY = '"GET /private/**";q=2;w=3600'


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_checks_spend_the_budget_and_carry_the_ratelimit_fields_until_the_429(
    frontend: str,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    # In front of a mesh every request passes through a check, never through the proxied port: the
    # check is where a caller's budget goes.
    authz = await start_authz(upstream.url, authz=LIMITS)
    bearer = {"Authorization": f"Bearer {token('private:read', sub='alice')}"}
    for left, full_in in ((1, 1800), (0, 3600)):
        status, body, headers = await ask(client, authz.authz_url, frontend, "GET", "/private/doc", bearer)
        assert (status, body) == (200, b"")
        assert headers.getall("RateLimit-Policy") == [POLICY]
        assert headers.getall("RateLimit") == [f'"GET /private/**";r={left};t={full_in}']
        assert headers["X-Auth-User-Id"] == "alice"
    status, body, headers = await ask(client, authz.authz_url, frontend, "GET", "/private/doc", bearer)
    assert status == 429
    assert headers["RateLimit"].startswith('"GET /private/**";r=0;t=')
    assert json.loads(body)["error"] == "rate_limited"
    # another caller has a budget of its own
    other = {"Authorization": f"Bearer {token('private:read', sub='bob')}"}
    assert (await ask(client, authz.authz_url, frontend, "GET", "/private/doc", other))[0] == 200
    # a route no limit names: no fields
    unlimited = {"Authorization": f"Bearer {token('proxy:use')}"}
    status, _, headers = await ask(client, authz.authz_url, frontend, "GET", "/items", unlimited)
    assert status == 200
    assert "RateLimit" not in headers and "RateLimit-Policy" not in headers
    assert upstream.requests == []


async def test_client_ip_behind_a_trusted_front_end_counts_its_forwarded_client(
    start_authz: AuthzFactory, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    # The front end (this test, on 127.0.0.1) asks for every client: X-Forwarded-For names each one.
    limits = (
        "rate_limits:\n  key: client_ip\n  trusted_proxies: [127.0.0.1/32]\n"
        '  routes:\n    "/public/**": {rate: 1/hour, burst: 1}\n'
    )
    authz = await start_authz(upstream.url, authz=limits)
    first = {"X-Forwarded-For": "198.51.100.1"}
    status, _, headers = await ask(client, authz.authz_url, "nginx", "GET", "/public/p", first)
    assert (status, headers["RateLimit"]) == (200, '"/public/**";r=0;t=3600')
    status, _, _ = await ask(
        client, authz.authz_url, "nginx", "GET", "/public/p", {"X-Forwarded-For": "203.0.113.5, 198.51.100.1"}
    )
    assert status == 429
    status, _, _ = await ask(
        client, authz.authz_url, "nginx", "GET", "/public/p", {"X-Forwarded-For": "198.51.100.2"}
    )
    assert status == 200


def _grpc_check(source: str, path: str, headers: dict[str, str]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # envoy-data-plane's own, at import
        from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress
        from envoy_data_plane.envoy.service.auth.v3 import (
            AttributeContext,
            AttributeContextHttpRequest,
            AttributeContextPeer,
            AttributeContextRequest,
            CheckRequest,
        )
    http = AttributeContextHttpRequest(method="GET", path=path, headers=headers)
    peer = AttributeContextPeer(
        address=Address(socket_address=SocketAddress(address=source, port_value=4711))
    )
    return CheckRequest(attributes=AttributeContext(source=peer, request=AttributeContextRequest(http=http)))


async def test_grpc_allow_sends_the_fields_to_the_client_and_counts_envoys_source_address(
    start_authz: AuthzFactory, upstream: RecordingUpstream
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from envoy_data_plane.envoy.service.auth.v3 import AuthorizationAsyncStub
    from grpclib.client import Channel

    limits = 'rate_limits:\n  key: client_ip\n  routes:\n    "/public/**": {rate: 1/hour, burst: 1}\n'
    authz = await start_authz(upstream.url, authz=f"authz:\n  grpc_listen: 127.0.0.1:0\n{limits}")
    assert authz.service.decisions is not None and authz.service.decisions.grpc_address is not None
    channel = Channel(*authz.service.decisions.grpc_address)
    try:
        stub = AuthorizationAsyncStub(channel)
        allowed = await stub.check(_grpc_check("198.51.100.1", "/public/p", {}))
        refused = await stub.check(
            _grpc_check("198.51.100.1", "/public/p", {"x-forwarded-for": "203.0.113.9"})
        )
        other = await stub.check(_grpc_check("198.51.100.2", "/public/p", {}))
    finally:
        channel.close()
    assert allowed.status is not None and allowed.status.code == 0
    ok = allowed.ok_response
    assert ok is not None
    added = {option.header.key: option.header.value for option in ok.response_headers_to_add if option.header}
    assert added == {"RateLimit-Policy": '"/public/**";q=1;w=3600', "RateLimit": '"/public/**";r=0;t=3600'}
    assert not any(option.header and option.header.key.startswith("RateLimit") for option in ok.headers)
    # Envoy's source is the client; an X-Forwarded-For from an untrusted one does not make a new client
    denied = refused.denied_response
    assert denied is not None and denied.status is not None and int(denied.status.code) == 429
    assert other.status is not None and other.status.code == 0
