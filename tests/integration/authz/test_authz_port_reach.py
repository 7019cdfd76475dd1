"""The decision port where the proxied port reads past the request line (MCP), and rate limits there."""

from __future__ import annotations

import json

import aiohttp
import pytest
from yarl import URL

from tests.rigs.authz import FRONTENDS, AuthzFactory, check_request
from tests.rigs.keys import TokenFactory
from tests.rigs.upstream import RecordingUpstream

PROXIED_PORT_ONLY = {
    "detail": (
        "this route's checks read the body, the answer or each message: it is served by the proxied port"
    ),
    "error": "proxied_port_only",
}

MCP = """\
mcp:
  endpoints:
    /mcp:
      tools:
        read_note: [notes:read]
"""

LIMITED = """\
rate_limits:
  routes:
    "* /**": {rate: 2/min, burst: 2}
"""


async def _ask(
    client: aiohttp.ClientSession, authz_url: str, frontend: str, method: str, target: str, bearer: str
) -> tuple[int, bytes]:
    verb, url, sent = check_request(
        frontend, authz_url, method, target, {"Authorization": f"Bearer {bearer}"}
    )
    async with client.request(verb, URL(url, encoded=True), headers=sent) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_an_mcp_endpoint_is_refused_on_the_decision_port(
    frontend: str,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    # The proxied port checks each tools/call in the body; a front end would pass the body unread, so a
    # token the gate lets in would reach every tool. The decision port refuses instead of widening.
    authz = await start_authz(upstream.url, authz=MCP)
    for method in ("POST", "GET", "DELETE"):
        status, body = await _ask(client, authz.authz_url, frontend, method, "/mcp", token("proxy:use"))
        assert (status, json.loads(body)) == (403, PROXIED_PORT_ONLY)
    # the same token on an ordinary route is allowed there
    assert (await _ask(client, authz.authz_url, frontend, "GET", "/items", token("proxy:use")))[0] == 200
    assert upstream.requests == []


@pytest.mark.parametrize("frontend", FRONTENDS)
async def test_rate_limits_are_spent_on_the_decision_port(
    frontend: str,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    # In front of a mesh every request passes through a check, never through the proxied port: the
    # check is where a caller's budget goes.
    authz = await start_authz(upstream.url, authz=LIMITED)
    bearer = token("proxy:use", sub="alice")
    answers = [await _ask(client, authz.authz_url, frontend, "GET", "/items", bearer) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 429]
    assert json.loads(answers[2][1])["error"] == "rate_limited"
    # another caller has a budget of its own
    assert (await _ask(client, authz.authz_url, frontend, "GET", "/items", token("proxy:use", sub="bob")))[
        0
    ] == 200
    assert upstream.requests == []
