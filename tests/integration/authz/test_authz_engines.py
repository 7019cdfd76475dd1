"""Real Envoy (ext_authz HTTP service, and its gRPC service on `authz.grpc_listen`), nginx (auth_request) and
Traefik (forwardAuth), configured by the examples we ship, asking authproxy's decision ports in front of the
recording upstream.

Allowed requests reach the upstream with our identity headers, never the client's, and are logged as that
front end's checks; denied ones never reach it. Envoy (either service) and Traefik relay our status, JSON
body and challenge; nginx relays the status of a 401 or 403 (a 401 with our challenge) and answers anything
else (our 400 for an ambiguous path) with its own 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from yarl import URL

from tests.rigs.authz import ENGINE_DENIALS, IDENTITY, SPOOFED, AuthzFactory, RunningAuthz, fetch, presented
from tests.rigs.authz_engines import Engine, envoy, nginx, traefik
from tests.rigs.keys import TokenFactory
from tests.rigs.polling import poll
from tests.rigs.upstream import RecordingUpstream

ENGINES = ("envoy", "nginx", "traefik", "envoy_grpc")
RELAY_OUR_ANSWER = ("envoy", "traefik", "envoy_grpc")  # status, body and challenge of a denial
CHECKS_LOGGED_AS = {"envoy": "envoy", "nginx": "nginx", "traefik": "forward_auth", "envoy_grpc": "envoy_grpc"}
GRPC_LISTEN = "authz:\n  grpc_listen: 127.0.0.1:0\n"
# Traefik resolves dot-segments (decoded ones too) before it routes, asks and forwards: its check names the
# resolved path, the one the upstream would get, and the answer is the proxied port's for that path.
RESOLVED_BY_TRAEFIK = {"/public/../private/x": "/private/x", "/public/%2e%2e/private/x": "/private/x"}


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream, engine_name: str) -> RunningAuthz:
    return await start_authz(upstream.url, authz=GRPC_LISTEN if engine_name == "envoy_grpc" else "")


@contextlib.asynccontextmanager
async def started(
    name: str, authz: RunningAuthz, upstream: RecordingUpstream, tmp: Path
) -> AsyncIterator[Engine]:
    decisions = authz.service.decisions
    assert decisions is not None
    upstream_address = ("127.0.0.1", URL(upstream.url).port or 0)
    if name == "envoy_grpc":
        assert decisions.grpc_address is not None
        engine = envoy(tmp, upstream_address, decisions.grpc_address, "envoy-grpc.yaml")
    else:
        assert decisions.address is not None
        start = {"envoy": envoy, "nginx": nginx, "traefik": traefik}[name]
        engine = start(tmp, upstream_address, decisions.address)
    async with engine as running:
        running.name = name
        await _routes_loaded(running, upstream)
        yield running


@pytest.fixture
async def engine(
    engine_name: str, authz: RunningAuthz, upstream: RecordingUpstream, short_tmp: Path
) -> AsyncIterator[Engine]:
    async with started(engine_name, authz, upstream, short_tmp) as running:
        yield running


async def _routes_loaded(engine: Engine, upstream: RecordingUpstream) -> None:
    """Traefik loads its file provider after it listens: poll a public path until it is routed."""
    async with engine.session() as session:

        async def routed() -> bool:
            return (await fetch(session, "GET", "/public/ready", {}))[0] != 404

        await poll(routed)
    assert upstream.requests, "the engine never routed a request to the upstream"
    upstream.requests.clear()


def checks(engine: Engine, logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str, int, str]]:
    """The checks the decision port logged as asked by `engine`: method, path, status, decision."""
    logged_as = CHECKS_LOGGED_AS[engine.name]
    return [(c["method"], c["path"], c["status"], c["decision"]) for c in logs if c.get("authz") == logged_as]


@pytest.fixture
async def via(engine: Engine) -> AsyncIterator[aiohttp.ClientSession]:
    async with engine.session() as session:
        yield session


async def test_allowed_request_reaches_upstream_with_our_identity_not_the_clients(
    engine: Engine, via: aiohttp.ClientSession, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    bearer = token("private:read", sub="alice", session_id="s-1")
    with structlog.testing.capture_logs() as logs:
        status, body, _ = await fetch(
            via, "GET", "/private/doc?x=1&y=%2F", {"Authorization": f"Bearer {bearer}", **SPOOFED}
        )
    assert status == 200, body
    seen = upstream.last()
    assert seen.raw_path == "/private/doc?x=1&y=%2F"
    assert [seen.header(name) for name in IDENTITY] == [["alice"], ["s-1"], ["private:read"]]
    assert seen.header("X_Auth_Scopes") == []
    assert len(upstream.requests) == 1
    assert checks(engine, logs) == [("GET", "/private/doc", 200, "allow")]


async def test_identity_header_the_decision_does_not_set_is_removed_not_passed_on(
    engine: Engine, via: aiohttp.ClientSession, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    bearer = token("proxy:use", sub="bob")  # no session_id claim
    with structlog.testing.capture_logs() as logs:
        status, _, _ = await fetch(via, "POST", "/items", {"Authorization": f"Bearer {bearer}", **SPOOFED})
    assert status == 200
    seen = upstream.last()
    assert (seen.method, seen.raw_path) == ("POST", "/items")
    assert [seen.header(name) for name in IDENTITY] == [["bob"], [], ["proxy:use"]]
    assert len(upstream.requests) == 1
    assert checks(engine, logs) == [("POST", "/items", 200, "allow")]


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
    start_authz: AuthzFactory, upstream: RecordingUpstream, short_tmp: Path, token: TokenFactory
) -> None:
    # Envoy and nginx pass the target as sent, and the gate refuses it (the test above).
    authz = await start_authz(upstream.url)
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
