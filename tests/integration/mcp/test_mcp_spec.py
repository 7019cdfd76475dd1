"""The resource server's duties of the current MCP specification, over raw HTTP where exact control is
needed: audience binding, Origin, routing headers, no token passthrough. Every refusal is checked for its
status, its body and that not one byte reached the upstream (the recording upstream)."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from authproxy.cli.explain import explanation
from tests.rigs.config import AUDIENCE
from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION
from tests.rigs.proxy import ProxyFactory
from tests.rigs.upstream import RecordingUpstream

RESOURCE = "https://notes.example.com/mcp"
BOUND = (AUDIENCE, RESOURCE)  # a token for this deployment, bound to the endpoint's resource
VERSION = "io.modelcontextprotocol/protocolVersion"


def section(*lines: str) -> str:
    return MCP_SECTION.format(max_body=MAX_BODY) + "".join(f"  {line}\n" for line in lines)


def message(ident: int, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}


def call(ident: int, tool: str, **arguments: str) -> dict[str, Any]:
    return message(ident, "tools/call", name=tool, arguments=arguments)


async def post(
    url: str, body: Any, token: str | None, headers: list[tuple[str, str]] | None = None
) -> tuple[int, CIMultiDict[str], Any]:
    sent = CIMultiDict([("Content-Type", "application/json"), *(headers or [])])
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(url, data=json.dumps(body), headers=sent) as answer:
        return answer.status, CIMultiDict(answer.headers), await answer.json(content_type=None)


@pytest.fixture
async def bound(start_proxy: ProxyFactory, upstream: RecordingUpstream) -> str:
    """authproxy with `mcp.resource` set: its /mcp is https://notes.example.com/mcp."""
    return (await start_proxy(upstream.url, extra=section("resource: https://notes.example.com"))).url


@pytest.mark.parametrize(
    "body",
    [
        message(1, "initialize", protocolVersion="2025-11-25", capabilities={}, clientInfo={"name": "c"}),
        message(1, "server/discover"),
        call(1, "whoami"),
    ],
    ids=["initialize", "server/discover", "tools/call"],
)
async def test_a_token_for_another_resource_is_refused_on_every_method(
    bound: str, upstream: RecordingUpstream, token: TokenFactory, body: dict[str, Any]
) -> None:
    status, headers, answer = await post(
        bound + "/mcp", body, token(aud=[AUDIENCE, "https://other.example/mcp"])
    )
    assert status == 401
    assert answer["error"] == "invalid_token"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    metadata = "https://notes.example.com/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in headers["WWW-Authenticate"]
    assert upstream.requests == []


async def test_a_token_bound_to_the_resource_is_served(
    bound: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    status, _, _ = await post(bound + "/mcp", call(1, "whoami"), token(aud=list(BOUND)))
    assert status == 200
    assert len(upstream.requests) == 1


async def test_the_deployment_audience_still_holds_beside_the_resource(
    bound: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    status, _, answer = await post(bound + "/mcp", call(1, "whoami"), token(aud=RESOURCE))
    assert (status, answer["error"]) == (401, "invalid_token")
    assert upstream.requests == []


@pytest.mark.parametrize("with_token", [True, False])
async def test_a_foreign_origin_is_refused_before_any_check(
    bound: str, upstream: RecordingUpstream, token: TokenFactory, with_token: bool
) -> None:
    sent = token(aud=list(BOUND)) if with_token else None
    origin = [("Origin", "https://evil.example")]
    status, headers, answer = await post(bound + "/mcp", call(1, "whoami"), sent, origin)
    assert (status, answer["error"]) == (403, "forbidden")
    assert "WWW-Authenticate" not in headers or "resource_metadata" in headers["WWW-Authenticate"]
    assert upstream.requests == []


async def test_the_resource_origin_and_no_origin_are_served(
    bound: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    own = [("Origin", "https://notes.example.com")]
    assert (await post(bound + "/mcp", call(1, "whoami"), token(aud=list(BOUND)), own))[0] == 200
    assert (await post(bound + "/mcp", call(2, "whoami"), token(aud=list(BOUND))))[0] == 200
    assert len(upstream.requests) == 2


async def test_allowed_origins_replace_the_default(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    extra = section("resource: https://notes.example.com", "allowed_origins: [https://app.example.com]")
    url = (await start_proxy(upstream.url, extra=extra)).url + "/mcp"
    bound_token = token(aud=list(BOUND))
    listed = [("Origin", "https://app.example.com")]
    assert (await post(url, call(1, "whoami"), bound_token, listed))[0] == 200
    assert len(upstream.requests) == 1
    own = [("Origin", "https://notes.example.com")]
    status, _, _ = await post(url, call(2, "whoami"), bound_token, own)
    assert status == 403
    assert len(upstream.requests) == 1


async def test_without_a_resource_the_requests_own_host_is_the_origin(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    base = (await start_proxy(upstream.url, extra=section())).url
    assert (await post(base + "/mcp", call(1, "whoami"), token(), [("Origin", base)]))[0] == 200
    foreign = [("Origin", "http://rebound.example:80")]
    assert (await post(base + "/mcp", call(2, "whoami"), token(), foreign))[0] == 403
    assert len(upstream.requests) == 1


def b64(text: str) -> str:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="


@pytest.fixture
async def plain(start_proxy: ProxyFactory, upstream: RecordingUpstream) -> str:
    return (await start_proxy(upstream.url, extra=section())).url + "/mcp"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        # a router reading the header sees an allowed tool; the body calls a refused one
        (call(1, "purge"), [("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")]),
        # a legacy-era request: the header says initialize, the body runs a tool
        (call(1, "read_note", note_id="n1"), [("Mcp-Method", "initialize")]),
        (call(1, "whoami"), [("Mcp-Method", "tools/call"), ("Mcp-Method", "tools/call")]),
        (call(1, "whoami"), [("Mcp-Name", "whoami"), ("Mcp-Name", "whoami")]),
        (call(1, "purge"), [("Mcp-Name", b64("whoami"))]),
        (call(1, "whoami"), [("Mcp-Name", "=?base64?not base64!?=")]),
        (message(1, "tools/list"), [("Mcp-Name", "whoami")]),
        (
            message(1, "tools/list", _meta={VERSION: "2026-07-28"}),
            [("MCP-Protocol-Version", "2025-11-25")],
        ),
        ([call(1, "whoami"), call(2, "whoami")], [("Mcp-Method", "tools/call")]),
    ],
    ids=[
        "name-over-refused-call",
        "legacy-initialize-over-call",
        "method-twice",
        "name-twice",
        "base64-name-over-refused-call",
        "bad-base64",
        "name-on-a-list",
        "protocol-version",
        "batch",
    ],
)
async def test_routing_headers_that_disagree_with_the_body_are_a_header_mismatch(
    plain: str, upstream: RecordingUpstream, token: TokenFactory, body: Any, headers: list[tuple[str, str]]
) -> None:
    status, _, answer = await post(plain, body, token("notes:n1:read"), headers)
    assert status == 400
    assert answer["error"]["code"] == -32020
    assert answer["error"]["message"].startswith("Header mismatch: ")
    assert answer["jsonrpc"] == "2.0"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        [("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami"), ("MCP-Protocol-Version", "2026-07-28")],
        [("Mcp-Method", "tools/call"), ("Mcp-Name", b64("whoami"))],
        [],
    ],
    ids=["plain", "base64", "none"],
)
async def test_routing_headers_that_agree_are_forwarded(
    plain: str, upstream: RecordingUpstream, token: TokenFactory, headers: list[tuple[str, str]]
) -> None:
    body = call(1, "whoami")
    body["params"]["_meta"] = {VERSION: "2026-07-28"}
    status, _, _ = await post(plain, body, token(), headers)
    assert status == 200
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("forward", [False, True])
async def test_the_callers_token_reaches_the_upstream_only_when_forward_token_is_set(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, token: TokenFactory, forward: bool
) -> None:
    extra = section(f"forward_token: {str(forward).lower()}")
    url = (await start_proxy(upstream.url, extra=extra, sources="header, cookie")).url + "/mcp"
    sent = token(sub="alice")
    cookie = [("Cookie", f"theme=dark; access_token={sent}")]
    for headers in ([], cookie):
        tok = sent if not headers else None
        status, _, _ = await post(url, call(1, "whoami"), tok, headers)
        assert status == 200
    assert len(upstream.requests) == 2
    for recorded in upstream.requests:
        names = {name.lower(): value for name, value in recorded.headers}
        assert names["x-auth-user-id"] == "alice"
        assert ("authorization" in names or sent in names.get("cookie", "")) is forward
    assert {name.lower(): v for name, v in upstream.requests[1].headers}["cookie"].startswith("theme=dark")


async def test_a_401_challenge_names_the_scopes_the_endpoints_tools_need(
    plain: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    base = plain.removesuffix("/mcp")
    for sent in (None, token(aud="another-deployment")):
        status, headers, _ = await post(plain, message(1, "initialize"), sent)
        assert status == 401
        challenge = headers["WWW-Authenticate"]
        # `notes:{note_id}:read` is granted as notes:read (as the metadata's scopes_supported says)
        assert 'scope="notes:read notes:write"' in challenge
        assert challenge.endswith(f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"')
    assert upstream.requests == []


def every_scope_section() -> str:
    return section().replace("whoami: []", "whoami: []\n        audit: [notes:read, audit:read]")


async def test_a_403_names_every_scope_the_refused_operation_needs(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    url = (await start_proxy(upstream.url, extra=every_scope_section())).url + "/mcp"
    status, headers, body = await post(url, call(1, "audit"), token("notes:read"))
    assert status == 403
    assert 'scope="notes:read audit:read"' in headers["WWW-Authenticate"]
    assert body["error"]["data"]["missing_scopes"] == ["audit:read"]
    # A batch is refused whole: its challenge names what its allowed calls need too.
    batch = [call(1, "read_note", note_id="n1"), call(2, "audit")]
    status, headers, _ = await post(url, batch, token("notes:n1:read", "notes:read"))
    assert status == 403
    assert 'scope="notes:n1:read notes:read audit:read"' in headers["WWW-Authenticate"]
    assert upstream.requests == []


async def test_explain_answers_a_header_mismatch_as_the_proxy_does(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    proxy = await start_proxy(upstream.url, extra=section())
    body = json.dumps(call(1, "purge")).encode()
    sent = token("proxy:use")
    routing = [("Mcp-Method", "tools/call"), ("Mcp-Name", "whoami")]
    status, _, answer = await post(proxy.url + "/mcp", call(1, "purge"), sent, routing)
    given = ["Content-Type: application/json", *(f"{k}: {v}" for k, v in routing)]
    explained = await explanation(
        str(proxy.config_path), "POST", "/mcp", token=sent, headers=given, body=body
    )
    assert (
        (explained.document()["status"], json.loads(explained.body_bytes))
        == (status, answer)
        == (400, answer)
    )
    assert answer["error"]["code"] == -32020
    assert upstream.requests == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_the_stream_and_the_end_of_a_session_are_bound_to_the_resource_too(
    bound: str, upstream: RecordingUpstream, token: TokenFactory, method: str
) -> None:
    headers = {"Authorization": f"Bearer {token()}", "Mcp-Session-Id": "s-1"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, bound + "/mcp", headers=headers) as answer,
    ):
        assert (answer.status, (await answer.json())["error"]) == (401, "invalid_token")
    assert upstream.requests == []
