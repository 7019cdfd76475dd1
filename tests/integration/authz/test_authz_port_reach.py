"""The decision port where the proxied port reads past the request line: a front end asks with the request
line and headers only, so an allow whose stage would read the query, the body, the answer or each message
(or ask the upstream first) is refused, never passed whole."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
import pytest

from tests.rigs.authz import FRONTENDS, AuthzFactory, ask
from tests.rigs.config import BASE_ROUTES
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


@dataclass(frozen=True)
class ReadsPast:
    """A route whose stage reads past the request line, and a check beside it that needs no reading."""

    options: dict[str, str]  # start_authz's: what puts the route in the config
    methods: tuple[str, ...]
    target: str
    scopes: tuple[str, ...]  # a caller the gate lets in
    allowed: tuple[str, tuple[str, ...]]  # a target and scopes whose check reads nothing


def _routes(rule: str) -> dict[str, str]:
    return {"routes": f"    {rule}\n{BASE_ROUTES}"}


READS_PAST = {
    # the listing is cut to the caller's agents; a caller who may read every agent needs no filter
    "answer-listing": ReadsPast(
        {"policy": "  preset: agentos\n"},
        ("GET",),
        "/agents",
        ("agents:alpha:read",),
        ("/agents", ("agents:read",)),
    ),
    # the proxied port checks each tools/call in the body; a front end would pass the body unread
    "messages-mcp": ReadsPast(
        {"authz": MCP}, ("POST", "GET", "DELETE"), "/mcp", ("proxy:use",), ("/items", ("proxy:use",))
    ),
    "query-pin": ReadsPast(
        _routes('"GET /items": {scopes: [items:read], pin: {query.user_id: user_id}}'),
        ("GET",),
        "/items",
        ("items:read",),
        ("/other", ("proxy:use",)),
    ),
    "body-pin": ReadsPast(
        _routes('"POST /items": {scopes: [items:write], pin: {json:/owner: user_id}}'),
        ("POST",),
        "/items",
        ("items:write",),
        ("/other", ("proxy:use",)),
    ),
    "lookup-owner": ReadsPast(
        _routes('"DELETE /things/{id}": {scopes: [items:write], owner: {get: "/lookup/{id}"}}'),
        ("DELETE",),
        "/things/1",
        ("items:write",),
        ("/other", ("proxy:use",)),
    ),
    "answer-response-check": ReadsPast(
        _routes('"GET /entity/{id}": {scopes: [items:read], response: {json:/user_id: user_id}}'),
        ("GET",),
        "/entity/1",
        ("items:read",),
        ("/other", ("proxy:use",)),
    ),
}


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("route", READS_PAST.values(), ids=READS_PAST.keys())
async def test_a_route_read_past_its_request_line_is_refused_on_the_decision_port(
    frontend: str,
    route: ReadsPast,
    start_authz: AuthzFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    # A token the gate lets in would get the whole answer, or every tool: the decision port refuses instead
    # of widening.
    authz = await start_authz(upstream.url, **route.options)
    bearer = {"Authorization": f"Bearer {token(*route.scopes)}"}
    for method in route.methods:
        status, body, _ = await ask(client, authz.authz_url, frontend, method, route.target, bearer)
        assert (status, json.loads(body)) == (403, PROXIED_PORT_ONLY)
    target, scopes = route.allowed
    allowed = {"Authorization": f"Bearer {token(*scopes)}"}
    assert (await ask(client, authz.authz_url, frontend, "GET", target, allowed))[:2] == (200, b"")
    assert upstream.requests == []
