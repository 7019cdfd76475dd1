"""Real Envoy (ext_authz HTTP service), nginx (auth_request) and Traefik (forwardAuth), configured by the
examples we ship, asking authproxy's decision port in front of the recording upstream.

Allowed requests reach the upstream with our identity headers, never the client's; denied ones never reach
it. Envoy and Traefik relay our status, JSON body and challenge; nginx relays the status of a 401 or 403 (a
401 with our challenge) and answers anything else (our 400 for an ambiguous path) with its own 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from yarl import URL

from tests.rigs.authz import ENGINE_DENIALS, IDENTITY, SPOOFED, AuthzFactory, RunningAuthz, fetch, presented
from tests.rigs.authz_engines import Engine, envoy, nginx, traefik
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

ENGINES = ("envoy", "nginx", "traefik")
RELAY_OUR_ANSWER = ("envoy", "traefik")  # status, body and challenge of a denial
# Traefik resolves dot-segments (decoded ones too) before it routes, asks and forwards: its check names the
# resolved path, the one the upstream would get, and the answer is the proxied port's for that path.
RESOLVED_BY_TRAEFIK = {"/public/../private/x": "/private/x", "/public/%2e%2e/private/x": "/private/x"}


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream) -> RunningAuthz:
    return await start_authz(upstream.url)


@contextlib.asynccontextmanager
async def started(
    name: str, authz: RunningAuthz, upstream: RecordingUpstream, tmp: Path
) -> AsyncIterator[Engine]:
    assert authz.service.decisions is not None
    upstream_address = ("127.0.0.1", URL(upstream.url).port or 0)
    start = {"envoy": envoy, "nginx": nginx, "traefik": traefik}[name]
    decisions = authz.service.decisions.address
    assert decisions is not None
    async with start(tmp, upstream_address, decisions) as running:
        running.name = name
        await _routes_loaded(running, upstream)
        yield running


@pytest.fixture(params=ENGINES)
async def engine(
    request: pytest.FixtureRequest, authz: RunningAuthz, upstream: RecordingUpstream, short_tmp: Path
) -> AsyncIterator[Engine]:
    async with started(request.param, authz, upstream, short_tmp) as running:
        yield running


async def _routes_loaded(engine: Engine, upstream: RecordingUpstream) -> None:
    """Traefik loads its file provider after it listens: poll a public path until it is routed."""
    async with engine.session() as session:
        for _ in range(200):
            if (await fetch(session, "GET", "/public/ready", {}))[0] != 404:
                break
            await asyncio.sleep(0.05)
    assert upstream.requests, "the engine never routed a request to the upstream"
    upstream.requests.clear()


@pytest.fixture
async def via(engine: Engine) -> AsyncIterator[aiohttp.ClientSession]:
    async with engine.session() as session:
        yield session


async def test_allowed_request_reaches_upstream_with_our_identity_not_the_clients(
    engine: Engine, via: aiohttp.ClientSession, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    bearer = token("private:read", sub="alice", session_id="s-1")
    status, body, _ = await fetch(
        via, "GET", "/private/doc?x=1&y=%2F", {"Authorization": f"Bearer {bearer}", **SPOOFED}
    )
    assert status == 200, body
    seen = upstream.last()
    assert seen.raw_path == "/private/doc?x=1&y=%2F"
    assert [seen.header(name) for name in IDENTITY] == [["alice"], ["s-1"], ["private:read"]]
    assert seen.header("X_Auth_Scopes") == []
    assert len(upstream.requests) == 1


async def test_identity_header_the_decision_does_not_set_is_removed_not_passed_on(
    engine: Engine, via: aiohttp.ClientSession, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    bearer = token("proxy:use", sub="bob")  # no session_id claim
    status, _, _ = await fetch(via, "POST", "/items", {"Authorization": f"Bearer {bearer}", **SPOOFED})
    assert status == 200
    seen = upstream.last()
    assert (seen.method, seen.raw_path) == ("POST", "/items")
    assert [seen.header(name) for name in IDENTITY] == [["bob"], [], ["proxy:use"]]


async def test_public_route_passes_without_any_identity_header(
    engine: Engine, via: aiohttp.ClientSession, upstream: RecordingUpstream
) -> None:
    status, _, _ = await fetch(via, "GET", "/public/page", SPOOFED)
    assert status == 200
    seen = upstream.last()
    assert [seen.header(name) for name in (*IDENTITY, "X_Auth_Scopes")] == [[], [], [], []]


@pytest.mark.parametrize(
    ("name", "method", "target", "kind"), ENGINE_DENIALS, ids=[d[0] for d in ENGINE_DENIALS]
)
async def test_denied_request_never_reaches_upstream_and_the_client_gets_our_answer(
    name: str,
    method: str,
    target: str,
    kind: str | None,
    engine: Engine,
    via: aiohttp.ClientSession,
    authz: RunningAuthz,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    headers = presented(kind, token)
    status, body, answer = await fetch(via, method, target, {**headers, **SPOOFED})
    assert upstream.requests == []
    # what the proxied port answers the same request
    asked = RESOLVED_BY_TRAEFIK.get(target, target) if engine.name == "traefik" else target
    async with client.request(method, URL(authz.url + asked, encoded=True), headers=headers) as resp:
        want_status, want_body, want_challenge = (
            resp.status,
            await resp.read(),
            resp.headers.get("WWW-Authenticate"),
        )
    assert upstream.requests == []
    assert want_status in (400, 401, 403)
    if engine.name in RELAY_OUR_ANSWER:
        assert (status, body) == (want_status, want_body)
        assert answer.get("WWW-Authenticate") == want_challenge
        assert answer["Content-Type"] == "application/json"
    elif want_status == 401:
        assert (status, answer.get("WWW-Authenticate")) == (401, want_challenge)
    elif want_status == 403:
        assert status == 403
    else:
        assert status in (400, 500)  # nginx refuses some itself (400); auth_request turns our 400 into 500


async def test_traefik_asks_about_and_forwards_the_same_resolved_path(
    authz: RunningAuthz, upstream: RecordingUpstream, short_tmp: Path, token: TokenFactory
) -> None:
    # Envoy and nginx pass the target as sent, and the gate refuses it (the test above).
    bearer = token("private:read", sub="dana")
    async with started("traefik", authz, upstream, short_tmp) as running, running.session() as via:
        with structlog.testing.capture_logs() as logs:
            status, _, _ = await fetch(
                via, "GET", "/public/../private/x", {"Authorization": f"Bearer {bearer}"}
            )
    assert status == 200
    checked = [entry["path"] for entry in logs if entry.get("authz") == "forward_auth"]
    assert checked == ["/private/x"]
    assert [r.raw_path for r in upstream.requests] == ["/private/x"]
