"""`authproxy explain` and the proxy render a denial from the same Decision: same status, header and bytes,
whether the gate refuses or a check after it (content, MCP, WebSocket), on the proxied and the decision
port."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from authproxy.cli.explain import explain, explanation
from tests.rigs.authz import check_request
from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import Launch, RunningProxy
from tests.rigs.upstream import RecordingUpstream

CASES = [
    ("no token", "GET", "/private/x", None),
    ("invalid token", "GET", "/private/x", "not.a.jwt"),
    ("insufficient scope", "GET", "/private/x", "proxy-use-only"),
    ("ambiguous path", "GET", "/public/../private/x", None),
    # The gate refuses an identity the headers cannot carry: explain and the proxy both answer 401.
    ("control character in a claim", "GET", "/anything", "control-char-sub"),
    ("whitespace in a scope", "GET", "/anything", "whitespace-scope"),
]


@pytest.mark.parametrize(("name", "method", "target", "token_kind"), CASES, ids=[c[0] for c in CASES])
async def test_denial_body_is_byte_identical_to_explain(
    name: str,
    method: str,
    target: str,
    token_kind: str | None,
    proxy: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    presented = {
        "proxy-use-only": token("proxy:use"),
        "control-char-sub": token("proxy:use", sub="alice\r\nX-Auth-Scopes: proxy:admin"),
        "whitespace-scope": token("proxy:use", "x proxy:admin"),
    }.get(token_kind or "", token_kind)
    headers = {"Authorization": f"Bearer {presented}"} if presented else {}
    # encoded=True: the target goes out as written, dot-segments included
    async with client.request(method, URL(proxy.url + target, encoded=True), headers=headers) as resp:
        status, body = resp.status, await resp.read()
        challenge = resp.headers.get("WWW-Authenticate")
    report, allowed = await explain(str(proxy.config_path), method, target, token=presented)
    assert not allowed
    assert report["status"] == str(status)
    assert report["body"].encode() == body
    assert report.get("www-authenticate") == challenge
    assert presented is None or presented not in report["body"]
    assert upstream.requests == []


# --- the checks after the gate: content, MCP and WebSocket routes, on the proxied and the decision port ---

CONTENT_RULES = """\
    "GET /items": {scopes: [items:read], pin: {query.user_id: user_id}}
    "POST /items": {scopes: [items:write], pin: {json:/owner: user_id}, max_body: 64}
    "GET /entity/{id}": {scopes: [items:read], response: {json:/user_id: user_id}}
    "POST /evals": {scopes: [evals:write], items: {json:/agent_id: ["agents:{value}:run"]}}
    "POST /runs/{run_id}/cancel":
      scopes: [items:write]
      owner: {get: "/lookup/{run_id}?session={query.session_id}&user={caller.user_id}"}
    "POST /payments": {scopes: [items:write], when: "body.amount <= 1000"}
"""
MCP_SECTION = """\
mcp:
  resource: https://notes.example.com
  authorization_servers: [https://idp.example.com]
  max_body: 256
  endpoints:
    /mcp:
      tools:
        read_note: ["notes:{note_id}:read"]
        whoami: []
        purge: deny
        migrate: {scopes: [], when: "tool.arguments.dry_run == true"}
"""
JSON = {"Content-Type": "application/json"}
# MCP_SECTION's endpoint is this resource: its tokens name it beside the deployment's audience (RFC 8707).
BOUND = [AUDIENCE, "https://notes.example.com/mcp"]


def _rpc(ident: int, tool: str, **arguments: str) -> dict[str, object]:
    params = {"name": tool, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


# (id, method, target, scopes of alice's token or None for no token, headers, body)
STAGE_CASES: list[tuple[str, str, str, tuple[str, ...] | None, dict[str, str], bytes | None]] = [
    ("query pin names another user", "GET", "/items?user_id=bob", ("items:read",), {}, None),
    ("query pin given twice", "GET", "/items?user_id=alice&user_id=bob", ("items:read",), {}, None),
    ("body pin names another user", "POST", "/items", ("items:write",), JSON, b'{"owner": "bob"}'),
    ("malformed body", "POST", "/items", ("items:write",), JSON, b"{not json"),
    ("body without a media type", "POST", "/items", ("items:write",), {}, b'{"owner": "alice"}'),
    ("body over the bound", "POST", "/items", ("items:write",), JSON, b'{"pad": "' + b"x" * 80 + b'"}'),
    ("item scope missing", "POST", "/evals", ("evals:write", "agents:a1:run"), JSON, b'{"agent_id": "a2"}'),
    ("HEAD on a response-checked route", "HEAD", "/entity/e1", ("items:read",), {}, None),
    ("owner lookup needs a query field", "POST", "/runs/r1/cancel", ("items:write",), {}, None),
    ("no token on a content route", "GET", "/items?user_id=bob", None, {}, None),
    ("mcp call refused", "POST", "/mcp", ("proxy:use",), JSON, json.dumps(_rpc(1, "purge")).encode()),
    (
        "mcp per-item scope missing",
        "POST",
        "/mcp",
        ("notes:n1:read",),
        JSON,
        json.dumps(_rpc(2, "read_note", note_id="n2")).encode(),
    ),
    ("mcp malformed body", "POST", "/mcp", ("proxy:use",), JSON, b'{"jsonrpc": "2.0", "id": 1,'),
    (
        "mcp batch with one refused call",
        "POST",
        "/mcp",
        ("notes:n1:read",),
        JSON,
        json.dumps([_rpc(1, "read_note", note_id="n1"), _rpc(2, "purge")]).encode(),
    ),
    ("mcp without a token", "POST", "/mcp", None, JSON, json.dumps(_rpc(1, "whoami")).encode()),
    ("body condition false", "POST", "/payments", ("items:write",), JSON, b'{"amount": 5000}'),
    (
        "mcp tool condition false",
        "POST",
        "/mcp",
        ("proxy:use",),
        JSON,
        json.dumps(_rpc(3, "migrate")).encode(),
    ),
]


@pytest.fixture
async def staged(
    launch: Launch, tmp_path: Path, hs_secret: bytes, upstream: RecordingUpstream
) -> RunningProxy:
    """The rig's proxy with content rules, an MCP endpoint and a decision port."""
    text = config_text(upstream.url, hs_secret).replace('    "* /**"', CONTENT_RULES + '    "* /**"', 1)
    path = tmp_path / "staged.yaml"
    path.write_text(text + MCP_SECTION + "authz_listen: 127.0.0.1:0\n")
    return await launch(path)


async def _decision_port(
    client: aiohttp.ClientSession, proxy: RunningProxy, method: str, target: str, headers: dict[str, str]
) -> tuple[int, bytes, str | None]:
    """The decision port's answer, asked as nginx asks (`auth_request`: the request line in headers)."""
    assert proxy.service.decisions is not None and proxy.service.decisions.address is not None
    host, port = proxy.service.decisions.address
    verb, url, sent = check_request("nginx", f"http://{host}:{port}", method, target, headers)
    async with client.request(verb, URL(url, encoded=True), headers=sent) as resp:
        return resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")


@pytest.mark.parametrize(
    ("name", "method", "target", "scopes", "headers", "body"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES]
)
async def test_a_refusal_after_the_gate_is_explained_byte_for_byte_on_both_ports(
    name: str,
    method: str,
    target: str,
    scopes: tuple[str, ...] | None,
    headers: dict[str, str],
    body: bytes | None,
    staged: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    presented = token(*scopes, sub="alice", aud=BOUND) if scopes is not None else None
    sent = {**headers, **({"Authorization": f"Bearer {presented}"} if presented else {})}
    url = URL(staged.url + target, encoded=True)
    # skip_auto_headers: the body goes with the Content-Type the case gives, or none (as explain sends it)
    async with client.request(
        method, url, headers=sent, data=body, skip_auto_headers=["Content-Type"]
    ) as resp:
        status, answer, challenge = resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")
    assert upstream.requests == []  # refused before the upstream: not even an owner lookup
    given = [f"{k}: {v}" for k, v in headers.items()]
    explained = await explanation(
        str(staged.config_path), method, target, token=presented, headers=given, body=body
    )
    document = explained.document()
    assert (document["decision"], document["status"], document["forwarded"]) == ("deny", status, False)
    assert explained.body_bytes == answer or (method == "HEAD" and answer == b"")  # HEAD: no body on the wire
    assert document["headers"].get("WWW-Authenticate") == challenge
    assert document["body"] == json.loads(explained.body_bytes)
    assert document["checks"][-1]["result"] == "refused"
    port_status, port_answer, port_challenge = await _decision_port(client, staged, method, target, sent)
    assert document["decision_port"]["status"] == port_status
    if scopes is None:  # refused by the gate: both ports answer alike
        assert document["port"] == "any"
        assert (port_answer, port_challenge) == (answer, challenge)
    else:  # the decision port cannot read past the request line: only the proxied port serves it
        assert document["port"] == "proxied"
        assert document["decision_port"]["error"] == json.loads(port_answer)["error"] == "proxied_port_only"


@pytest.mark.parametrize("origin", [None, "https://evil.example"])
async def test_an_mcp_token_for_another_resource_or_a_foreign_origin_is_refused_alike_everywhere(
    staged: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    origin: str | None,
) -> None:
    """The audience binding and the Origin check are the gate's: the proxied port, `explain` and the
    decision port give the same answer, byte for byte."""
    presented = token("proxy:use", sub="alice", aud=[AUDIENCE, "https://other.example/mcp"])
    extra = {"Origin": origin} if origin is not None else {}
    sent = {**JSON, **extra, "Authorization": f"Bearer {presented}"}
    body = json.dumps(_rpc(1, "whoami")).encode()
    async with client.post(staged.url + "/mcp", headers=sent, data=body) as resp:
        status, answer, challenge = resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")
    assert status == (403 if origin else 401)
    assert upstream.requests == []
    given = [f"{k}: {v}" for k, v in {**JSON, **extra}.items()]
    explained = await explanation(
        str(staged.config_path), "POST", "/mcp", token=presented, headers=given, body=body
    )
    document = explained.document()
    assert (document["status"], document["port"]) == (status, "any")
    assert explained.body_bytes == answer
    assert document["headers"].get("WWW-Authenticate") == challenge
    port_status, port_answer, port_challenge = await _decision_port(client, staged, "POST", "/mcp", sent)
    assert (port_status, port_answer, port_challenge) == (status, answer, challenge)
    assert upstream.requests == []


async def test_an_allowed_content_request_explains_its_pending_checks_and_the_ports(
    staged: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    presented = token("items:write", sub="alice")
    target = "/runs/r1/cancel?session_id=s1"
    explained = await explanation(str(staged.config_path), "POST", target, token=presented)
    document = explained.document()
    assert (document["decision"], document["status"], document["forwarded"]) == ("allow", 200, True)
    assert document["checks"][-1] == {
        "label": "owner lookup",
        "description": "GET /lookup/r1?session=s1&user=alice expects 200",
        "result": "pending",
    }
    bearer = {"Authorization": f"Bearer {presented}"}
    async with client.post(staged.url + target, headers=bearer) as resp:
        assert resp.status == 200  # the recording upstream answers the lookup 200: the request follows it
    lookup = ("GET", "/lookup/r1?session=s1&user=alice")
    assert [(r.method, r.raw_path) for r in upstream.requests] == [lookup, ("POST", target)]
    status, body, _ = await _decision_port(client, staged, "POST", target, bearer)
    assert (document["port"], document["decision_port"]) == (
        "proxied",
        {"status": status, "error": "proxied_port_only"},
    )
    assert json.loads(body)["error"] == "proxied_port_only"


WS_UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}


@pytest.mark.parametrize("scopes", [None, ("workflows:w1:run",)], ids=["refused", "allowed"])
async def test_the_workflow_socket_is_explained_as_both_ports_answer(
    scopes: tuple[str, ...] | None,
    launch: Launch,
    tmp_path: Path,
    hs_secret: bytes,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    text = config_text(upstream.url, hs_secret).replace(
        "  admin_scope:", "  preset: agentos\n  admin_scope:", 1
    )
    path = tmp_path / "preset.yaml"
    path.write_text(text + "authz_listen: 127.0.0.1:0\n")
    proxy = await launch(path)
    presented = token(*scopes, sub="alice") if scopes is not None else None
    headers = {**WS_UPGRADE, "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    if presented:
        headers["Authorization"] = f"Bearer {presented}"
    given = [f"{k}: {v}" for k, v in WS_UPGRADE.items()]
    explained = await explanation(str(path), "GET", "/workflows/ws", token=presented, headers=given)
    document = explained.document()
    port_status, port_answer, port_challenge = await _decision_port(
        client, proxy, "GET", "/workflows/ws", headers
    )
    assert document["decision_port"]["status"] == port_status
    if scopes is None:
        async with client.get(proxy.url + "/workflows/ws", headers=headers) as resp:
            status, answer, challenge = resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")
        assert (document["status"], explained.body_bytes) == (status, answer) == (401, port_answer)
        assert document["headers"]["WWW-Authenticate"] == challenge == port_challenge
        assert document["port"] == "any"
    else:
        assert (document["decision"], document["status"], document["port"]) == ("allow", 200, "proxied")
        assert document["checks"][-1] == {
            "label": "message check",
            "description": "workflows:run limited to: w1 (needs the upstream)",
            "result": "pending",
        }
        assert json.loads(port_answer)["error"] == document["decision_port"]["error"] == "proxied_port_only"
    assert upstream.requests == []
