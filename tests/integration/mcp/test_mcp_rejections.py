"""Every refusal on an MCP endpoint: its status, its body, and that not one byte reached the upstream (the
recording upstream); and what is allowed reaches the upstream exactly as sent."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp
import pytest

from authproxy.cli.explain import explain
from tests.rigs.keys import TokenFactory
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION, StartProxy
from tests.rigs.proxy import ProxyFactory
from tests.rigs.raw import raw_exchange
from tests.rigs.upstream import RecordingUpstream

READER = ("notes:n1:read",)


def call(ident: int, tool: str, **arguments: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


async def post(
    url: str, body: bytes | Any, token: str | None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=sent) as answer:
        return answer.status, dict(answer.headers), await answer.json(content_type=None)


@pytest.fixture
async def base(mcp_proxy: StartProxy, upstream: RecordingUpstream) -> str:
    return (await mcp_proxy(upstream.url)).url


async def test_a_denied_call_is_answered_with_the_step_up_challenge(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    status, headers, body = await post(base + "/mcp", call(7, "read_note", note_id="n2"), token(*READER))
    assert status == 403
    assert headers["WWW-Authenticate"] == (
        'Bearer realm="authproxy", error="insufficient_scope", scope="notes:n2:read", '
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
    )
    message = "Insufficient permissions. Required scope(s): notes:n2:read"
    assert body == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32003,
            "message": message,
            "data": {
                "error": "insufficient_scope",
                "tool": "read_note",
                "reason": "insufficient scope for this tool",
                "required_scopes": ["notes:n2:read"],
                "missing_scopes": ["notes:n2:read"],
            },
        },
        "detail": message,
    }
    assert upstream.requests == []


async def test_a_batch_with_one_denied_call_is_refused_whole(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    batch = [
        call(1, "read_note", note_id="n1"),
        call(2, "purge"),
        {"jsonrpc": "2.0", "method": "notifications/x"},
    ]
    status, headers, body = await post(base + "/mcp", batch, token(*READER))
    assert status == 403
    # refused whole: the challenge names what every call of it needs, not only the refused one's
    assert 'scope="notes:n1:read proxy:admin"' in headers["WWW-Authenticate"]
    assert [(e["id"], e["error"]["message"]) for e in body] == [
        (1, "not run: another call in this batch was refused"),
        (2, "Insufficient permissions. Required scope(s): proxy:admin"),
    ]
    assert upstream.requests == []


CALL = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
NO_METHOD = "a JSON-RPC message needs a method, or an id with a result or an error"
BAD_ID = "a JSON-RPC id must be a string or an integer"
BAD_ARGUMENTS = "tools/call params.arguments must be an object"


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700, "the body is not valid JSON"),
        (b"\xff\xfe", -32700, "the body is not UTF-8"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "ping"}'.encode("utf-16"), -32700, "the body is not UTF-8"),
        (b"[" * 1500 + b"]" * 1500, -32700, "the body is nested deeper than 64 levels"),
        (b'{"hello": "world"}', -32600, "not a JSON-RPC 2.0 message"),
        (b"[]", -32600, "an empty JSON-RPC batch"),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}, 3]', -32600, "not a JSON-RPC 2.0 message"),
        (
            b'{"jsonrpc": "2.0", "id": true, "method": "p"}',
            -32600,
            "a JSON-RPC id must be a string or an integer",
        ),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600, NO_METHOD),
        (CALL + b'"params": {}}', -32602, "tools/call needs params.name, the tool's name"),
        (CALL + b'"params": {"name": "whoami", "name": "purge"}}', -32700, "a JSON object repeats a key"),
        (CALL + b'"params": {"name": "whoami", "arguments": {"n": NaN}}}', -32700, "NaN is not JSON"),
        (
            CALL + b'"params": {"name": "x", "arguments": [1]}}',
            -32602,
            "tools/call params.arguments must be an object",
        ),
        (
            CALL + b'"params": {"name": "read_note", "arguments": {"note_id": "n1", "NOTE_ID": "n2"}}}',
            -32602,
            "tools/call params.arguments repeats a name in other letter case",
        ),
    ],
)
async def test_a_body_that_is_not_json_rpc_is_refused(
    base: str, upstream: RecordingUpstream, token: TokenFactory, body: bytes, code: int, detail: str
) -> None:
    status, _, answer = await post(base + "/mcp", body, token(*READER))
    assert status == 400
    assert answer == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": detail, "data": {"error": "bad_request"}},
        "detail": detail,
    }
    assert upstream.requests == []


async def test_a_body_over_the_bound_is_refused_before_it_is_read(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    big = json.dumps(call(1, "whoami", pad="x" * MAX_BODY)).encode()
    status, _, answer = await post(base + "/mcp", big, token(*READER))
    assert status == 413
    assert answer["error"]["data"] == {"error": "payload_too_large"}
    assert answer["detail"] == f"the MCP request body is larger than {MAX_BODY} bytes"
    # Chunked, so no Content-Length tells in advance: refused once the bound is passed.
    host = base.removeprefix("http://")
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token(*READER)}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunk = big[: MAX_BODY + 1]
    raw = await raw_exchange(base, head.encode() + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert upstream.requests == []


async def test_no_token_bad_token_compressed_body_and_other_methods_are_refused(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    metadata = f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
    status, headers, body = await post(base + "/mcp", call(1, "whoami"), None)
    assert (status, body["error"]) == (401, "missing_token")
    scopes = 'scope="notes:read notes:write"'
    assert headers["WWW-Authenticate"] == f'Bearer realm="authproxy", {scopes}, {metadata}'
    status, headers, body = await post(base + "/mcp", call(1, "whoami"), token(*READER)[:-4] + "AAAA")
    assert (status, body["error"]) == (401, "invalid_token")
    assert headers["WWW-Authenticate"].startswith('Bearer realm="authproxy", error="invalid_token"')
    assert headers["WWW-Authenticate"].endswith(metadata)
    gzipped = {"Content-Encoding": "gzip"}
    status, _, body = await post(base + "/mcp", call(1, "whoami"), token(*READER), gzipped)
    assert (status, body["detail"]) == (
        400,
        "a compressed MCP request cannot be checked; send it uncompressed",
    )
    auth = {"Authorization": f"Bearer {token('proxy:use')}"}
    async with aiohttp.ClientSession() as http, http.put(base + "/mcp", data=b"{}", headers=auth) as answer:
        assert (answer.status, answer.headers["Allow"]) == (405, "DELETE, GET, HEAD, OPTIONS, POST")
        assert await answer.json() == {
            "detail": "an MCP endpoint takes GET, POST and DELETE",
            "error": "method_not_allowed",
        }
    assert upstream.requests == []


async def test_every_answer_of_ours_on_an_mcp_endpoint_says_server_authproxy(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    auth = {"Authorization": f"Bearer {token(*READER)}", "Content-Type": "application/json"}
    answers = [
        ("GET", "/.well-known/oauth-protected-resource/mcp", b"", {}, 200),  # RFC 9728 metadata
        ("GET", "/.well-known/oauth-protected-resource", b"", {}, 200),
        ("POST", "/mcp", json.dumps(call(1, "read_note", note_id="n2")).encode(), auth, 403),
        ("POST", "/mcp", b"[]", auth, 400),
        ("POST", "/mcp", json.dumps(call(1, "whoami", pad="x" * MAX_BODY)).encode(), auth, 413),
        ("PUT", "/mcp", b"{}", {"Authorization": f"Bearer {token('proxy:use')}"}, 405),
        ("POST", "/mcp", b"{}", {"Content-Type": "application/json"}, 401),
    ]
    async with aiohttp.ClientSession() as http:
        for method, path, data, headers, status in answers:
            async with http.request(method, base + path, data=data, headers=headers) as answer:
                assert answer.status == status, (method, path)
                assert answer.headers.getall("Server") == ["authproxy"], (method, path, status)
    assert upstream.requests == []


async def test_an_encoded_spelling_of_the_path_is_checked_too(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    for path in ("/%6Dcp", "/mcp/", "/mcp?x=1"):
        status, _, body = await post(base + path, call(1, "read_note", note_id="n2"), token(*READER))
        assert (status, body["error"]["data"]["error"]) == (403, "insufficient_scope"), path
    assert upstream.requests == []


async def test_allowed_messages_reach_the_upstream_in_the_proxys_own_encoding(
    base: str, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    batch = json.dumps(
        [
            call(1, "read_note", note_id="n1"),
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 9, "result": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "ping"},
        ],
        indent=1,
    ).encode()
    session = {"Mcp-Session-Id": "session-123"}
    status, _, _ = await post(base + "/mcp", batch, token(*READER), session)
    assert status == 200
    forwarded = upstream.last()
    # The messages that were checked, re-encoded by the proxy (compact UTF-8 JSON): no second reading.
    canonical = json.dumps(json.loads(batch), separators=(",", ":"), ensure_ascii=False).encode()
    assert forwarded.body_sha256 == hashlib.sha256(canonical).hexdigest()
    assert forwarded.header("Mcp-Session-Id") == ["session-123"]
    auth = {"Authorization": f"Bearer {token(*READER)}", **session}
    async with aiohttp.ClientSession() as http:
        for method in ("GET", "DELETE"):
            async with http.request(method, base + "/mcp", headers=auth) as answer:
                assert answer.status == 200
            last = upstream.last()
            assert (last.method, last.header("Mcp-Session-Id")) == (method, ["session-123"])
        # Any other route keeps its streamed, uninspected forwarding: this body is not JSON at all.
        user = {"Authorization": f"Bearer {token('proxy:use')}"}
        async with http.post(base + "/other", data=b"{not json", headers=user) as answer:
            assert answer.status == 200
    assert upstream.last().body_sha256 == hashlib.sha256(b"{not json").hexdigest()


async def test_explain_gives_the_same_challenge_when_the_resource_url_is_configured(
    start_proxy: ProxyFactory, upstream: RecordingUpstream
) -> None:
    section = MCP_SECTION.format(max_body=MAX_BODY) + "  resource: https://notes.example.com\n"
    proxy = await start_proxy(upstream.url, extra=section)
    status, headers, body = await post(proxy.url + "/mcp", call(1, "whoami"), None)
    report, allowed = await explain(str(proxy.config_path), "POST", "/mcp", token=None)
    metadata = "https://notes.example.com/.well-known/oauth-protected-resource/mcp"
    scopes = 'scope="notes:read notes:write"'
    challenge = f'Bearer realm="authproxy", {scopes}, resource_metadata="{metadata}"'
    assert headers["WWW-Authenticate"] == challenge
    assert (allowed, report["status"]) == (False, str(status))
    assert report["www-authenticate"] == headers["WWW-Authenticate"]
    assert json.loads(report["body"]) == body
    assert upstream.requests == []
