"""Dry run on the decision port: `policy.dry_run` alone never widens it (a front end acts on our 200 alone);
with `authz.dry_run` too, a would-be refusal is answered 200, logged with `would` and counted."""

from __future__ import annotations

import aiohttp
import pytest
import structlog

from tests.rigs.authz import FRONTENDS, IDENTITY, AuthzFactory, ask
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.upstream import RecordingUpstream

DRY_RUN = "  dry_run: true\n"


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_policy_dry_run_alone_still_refuses_on_the_decision_port(
    frontend: str,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    authz = await start_authz(upstream.url, policy=DRY_RUN)
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    status, body, _ = await ask(client, authz.authz_url, frontend, "GET", "/private/x", bearer)
    assert status == 403
    assert b'"insufficient_scope"' in body
    assert upstream.requests == []
    samples = await scrape(client, authz.admin_url)
    assert value(samples, "authproxy_dry_run_refusals_total") == 0


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_with_authz_dry_run_a_would_be_refusal_is_answered_200(
    frontend: str,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    authz = await start_authz(upstream.url, policy=DRY_RUN, authz="authz:\n  dry_run: true\n")
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    with structlog.testing.capture_logs() as logs:
        status, body, headers = await ask(client, authz.authz_url, frontend, "GET", "/private/x", bearer)
        anonymous, _, bare = await ask(client, authz.authz_url, frontend, "GET", "/private/x")
    assert (status, body, anonymous) == (200, b"", 200)
    assert headers["X-Auth-User-Id"] == "alice"  # from the verified token
    assert all(name not in bare for name in IDENTITY)  # none without one
    assert upstream.requests == []
    would = [line["would"] for line in logs if line["event"] == "request"]
    assert would == [
        {"status": "403", "error": "insufficient_scope"},
        {"status": "401", "error": "missing_token"},
    ]
    samples = await scrape(client, authz.admin_url)
    assert value(samples, "authproxy_dry_run_refusals_total", route="GET /private/**") == 2
