"""Content-aware rules end to end: pins, item scopes, owner lookups and response checks, through a real
proxy in front of the tapped upstream. Every refusal is checked for its status, its body and that nothing
(not a byte, or only the owner lookup) reached the upstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.rigs.config import AUDIENCE
from tests.rigs.proxy import ProxyFactory
from tests.rigs.tapped import TappedUpstream, serving_tapped

RULES = """\
    "GET /items": {scopes: [items:read], pin: {query.user_id: user_id}}
    "POST /items": {scopes: [items:write], pin: {json:/owner: user_id}, max_body: 64}
    "POST /forms": {scopes: [items:write], pin: {form.user_id: user_id}}
    "GET /entity/{id}": {scopes: [items:read], response: {json:/user_id: user_id}, max_body: 256}
    "POST /evals": {scopes: [evals:write], items: {json:/agent_id: ["agents:{value}:run"]}}
    "DELETE /things/{id}":
      scopes: [items:write]
      owner: {get: "/lookup/{id}?user_id={caller.user_id}", expect: {json:/kind: thing}}
"""
PRIVATE = '    "GET /private/**": [private:read]\n'  # the integration template's second route, kept


class ContentUpstream(TappedUpstream):
    """The tapped upstream (an echo otherwise) with two answers of its own: /entity/{id} is an entity
    owned by `?owner=`, /lookup/{id} finds the ids `<user>-*` of `?user_id=`."""

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        parts = request.path.split("/")
        if parts[1] == "entity":
            if request.query.get("big"):
                return web.json_response({"user_id": request.query.get("owner"), "pad": "x" * 512})
            return web.json_response({"user_id": request.query.get("owner"), "secret": "entity data"})
        if parts[1] == "lookup":
            if parts[2].endswith("-boom"):
                return web.json_response({"detail": "database down"}, status=500)
            owned = parts[2].startswith(request.query.get("user_id", "?") + "-")
            return web.json_response({"kind": "thing"}) if owned else web.json_response({}, status=404)
        return None


@pytest.fixture
async def content_upstream() -> AsyncIterator[ContentUpstream]:
    async with serving_tapped(ContentUpstream()) as up:
        yield up


@pytest.fixture
async def content_proxy(content_upstream: ContentUpstream, start_proxy: ProxyFactory) -> str:
    return (await start_proxy(content_upstream.url, routes=RULES + PRIVATE, grace=1)).url


def bearer(mint: Any, *scopes: str, sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint({'sub': sub, 'aud': AUDIENCE, 'scopes': list(scopes)})}"}


async def call(
    client: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    async with client.request(method, url, headers=headers, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


# --- query pins ------------------------------------------------------------------------------------------


async def test_absent_query_field_is_set_to_the_callers_id(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, body = await call(client, "GET", content_proxy + "/items?limit=5", bearer(mint, "items:read"))
    assert status == 200
    assert body["raw_path"] == "/items?limit=5&user_id=alice"


async def test_query_field_naming_the_caller_passes_unchanged(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, body = await call(
        client, "GET", content_proxy + "/items?user_id=alice", bearer(mint, "items:read")
    )
    assert (status, body["raw_path"]) == (200, "/items?user_id=alice")


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [("user_id=bob", 403, "forbidden"), ("user_id=alice&user_id=bob", 400, "bad_request")],
)
async def test_query_field_naming_someone_else_or_twice_is_refused_before_the_upstream(
    query: str,
    status: int,
    error: str,
    content_proxy: str,
    content_upstream: ContentUpstream,
    mint: Any,
    client: aiohttp.ClientSession,
) -> None:
    got, body = await call(client, "GET", f"{content_proxy}/items?{query}", bearer(mint, "items:read"))
    assert (got, body["error"]) == (status, error)
    assert "user_id" in body["detail"]
    content_upstream.assert_nothing_forwarded()


async def test_admin_is_not_pinned(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, body = await call(
        client, "GET", content_proxy + "/items?user_id=bob", bearer(mint, "proxy:admin")
    )
    assert (status, body["raw_path"]) == (200, "/items?user_id=bob")


# --- JSON body pins --------------------------------------------------------------------------------------


async def test_absent_json_field_is_set_and_the_length_follows(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, _ = await call(
        client, "POST", content_proxy + "/items", bearer(mint, "items:write"), json={"a": 1}
    )
    assert status == 200
    seen = content_upstream.requests[-1]
    assert json.loads(seen.body) == {"a": 1, "owner": "alice"}
    assert seen.header("Content-Length") == [str(len(seen.body))]


async def test_json_field_naming_the_caller_is_forwarded_in_the_proxys_own_encoding(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    raw = b'{ "owner" : "alice",  "n": 2 }'
    headers = {**bearer(mint, "items:write"), "Content-Type": "application/json; charset=UTF-8"}
    status, _ = await call(client, "POST", content_proxy + "/items", headers, data=raw)
    assert status == 200
    seen = content_upstream.requests[-1]
    assert seen.body == b'{"owner":"alice","n":2}'  # what was checked, re-encoded: no second reading
    assert seen.header("Content-Length") == [str(len(seen.body))]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "detail"),
    [
        (b'{"owner": "bob"}', "application/json", 403, "forbidden", "json:/owner must be the caller's own"),
        (b'{"owner": ', "application/json", 400, "bad_request", "the request body is not valid JSON"),
        (b'{"owner": "alice", "owner": "bob"}', "application/json", 400, "bad_request", "repeats a key"),
        (b"[1, 2]", "application/json", 400, "bad_request", "json:/owner: the body has no object to hold it"),
        (b"owner=alice", "text/plain", 400, "bad_request", "this route's body must be JSON"),
        (b'{"pad": "' + b"x" * 80 + b'"}', "application/json", 413, "payload_too_large", "over 64 bytes"),
    ],
    ids=["someone else", "malformed", "duplicate key", "not an object", "not JSON", "over the bound"],
)
async def test_bad_json_bodies_are_refused_and_reach_nothing(
    body: bytes,
    content_type: str,
    status: int,
    error: str,
    detail: str,
    content_proxy: str,
    content_upstream: ContentUpstream,
    mint: Any,
    client: aiohttp.ClientSession,
) -> None:
    headers = {**bearer(mint, "items:write"), "Content-Type": content_type}
    got, answer = await call(client, "POST", content_proxy + "/items", headers, data=body)
    assert (got, answer["error"]) == (status, error)
    assert detail in answer["detail"]
    content_upstream.assert_nothing_forwarded()


async def test_chunked_body_over_the_bound_is_refused_without_a_length(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"0123456789"

    headers = {**bearer(mint, "items:write"), "Content-Type": "application/json"}
    got, answer = await call(client, "POST", content_proxy + "/items", headers, data=chunks())
    assert (got, answer["error"]) == (413, "payload_too_large")
    content_upstream.assert_nothing_forwarded()


# --- form pins -------------------------------------------------------------------------------------------


async def test_urlencoded_form_gets_the_callers_id(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, _ = await call(
        client, "POST", content_proxy + "/forms", bearer(mint, "items:write"), data={"message": "hi there"}
    )
    assert status == 200
    assert content_upstream.requests[-1].body == b"message=hi%20there&user_id=alice"


async def test_multipart_form_gets_the_callers_id_next_to_its_file(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("message", "hello")
    form.add_field("files", b"\x00\x01binary", filename="a.bin", content_type="application/octet-stream")
    status, _ = await call(client, "POST", content_proxy + "/forms", bearer(mint, "items:write"), data=form)
    assert status == 200
    seen = content_upstream.requests[-1]
    assert b'name="user_id"\r\n\r\nalice\r\n' in seen.body
    assert b"\x00\x01binary" in seen.body
    assert seen.header("Content-Length") == [str(len(seen.body))]


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
async def test_form_field_naming_someone_else_is_refused(
    multipart: bool,
    content_proxy: str,
    content_upstream: ContentUpstream,
    mint: Any,
    client: aiohttp.ClientSession,
) -> None:
    form = aiohttp.FormData({"message": "hi", "user_id": "bob"}, quote_fields=True)
    if multipart:
        form.add_field("files", b"x", filename="x.txt")
    got, answer = await call(client, "POST", content_proxy + "/forms", bearer(mint, "items:write"), data=form)
    assert (got, answer["error"], answer["detail"]) == (
        403,
        "forbidden",
        "form.user_id must be the caller's own",
    )
    content_upstream.assert_nothing_forwarded()


async def test_malformed_multipart_is_refused(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    headers = {**bearer(mint, "items:write"), "Content-Type": "multipart/form-data; boundary=zz"}
    got, answer = await call(client, "POST", content_proxy + "/forms", headers, data=b"no parts at all")
    assert (got, answer["error"]) == (400, "bad_request")
    content_upstream.assert_nothing_forwarded()


# --- item scopes named in the body -----------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["agents:a1:run", "agents:*:run", "agents:run"])
async def test_item_named_in_the_body_passes_with_its_scope(
    scope: str,
    content_proxy: str,
    content_upstream: ContentUpstream,
    mint: Any,
    client: aiohttp.ClientSession,
) -> None:
    headers = bearer(mint, "evals:write", scope)
    status, _ = await call(client, "POST", content_proxy + "/evals", headers, json={"agent_id": "a1"})
    assert status == 200
    assert json.loads(content_upstream.requests[-1].body) == {"agent_id": "a1"}


async def test_item_named_in_the_body_without_its_scope_is_refused(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    headers = bearer(mint, "evals:write", "agents:a2:run")
    async with client.post(content_proxy + "/evals", headers=headers, json={"agent_id": "a1"}) as response:
        answer = await response.json()
        assert response.status == 403
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert answer["missing_scopes"] == ["agents:a1:run"]
    content_upstream.assert_nothing_forwarded()


# --- owner lookup before a write -------------------------------------------------------------------------


async def test_write_to_an_owned_entity_is_forwarded_after_the_lookup(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, _ = await call(client, "DELETE", content_proxy + "/things/alice-1", bearer(mint, "items:write"))
    assert status == 200
    assert [(s.method, s.raw_path) for s in content_upstream.requests] == [
        ("GET", "/lookup/alice-1?user_id=alice"),
        ("DELETE", "/things/alice-1"),
    ]


async def test_write_to_someone_elses_entity_never_reaches_the_upstream(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    got, answer = await call(client, "DELETE", content_proxy + "/things/bob-1", bearer(mint, "items:write"))
    assert (got, answer["error"]) == (404, "not_found")
    assert [(s.method, s.raw_path) for s in content_upstream.requests] == [
        ("GET", "/lookup/bob-1?user_id=alice")
    ]


# --- response checks ------------------------------------------------------------------------------------


async def test_response_owned_by_the_caller_is_answered(
    content_proxy: str, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, body = await call(
        client, "GET", content_proxy + "/entity/1?owner=alice", bearer(mint, "items:read")
    )
    assert (status, body["secret"]) == (200, "entity data")


@pytest.mark.parametrize("query", ["owner=bob", ""], ids=["someone else", "no owner field"])
async def test_response_owned_by_someone_else_is_not_found(
    query: str, content_proxy: str, mint: Any, client: aiohttp.ClientSession
) -> None:
    status, body = await call(client, "GET", f"{content_proxy}/entity/1?{query}", bearer(mint, "items:read"))
    assert (status, body) == (404, {"detail": "not found", "error": "not_found"})


async def test_response_over_the_bound_is_a_502(
    content_proxy: str, mint: Any, client: aiohttp.ClientSession
) -> None:
    url = content_proxy + "/entity/1?owner=alice&big=1"
    status, body = await call(client, "GET", url, bearer(mint, "items:read"))
    assert (status, body["error"]) == (502, "upstream_unavailable")
    assert "entity data" not in json.dumps(body)


# --- more refusals: compressed bodies, callers without an id, HEAD, upstream faults ----------------------


async def test_compressed_body_cannot_be_checked(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    headers = {**bearer(mint, "items:write"), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    got, answer = await call(client, "POST", content_proxy + "/items", headers, data=b"\x1f\x8b\x08\x00")
    assert (got, answer["error"]) == (400, "bad_request")
    assert "compressed" in answer["detail"]
    content_upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("sub", [None, ""], ids=["no sub", "empty sub"])
async def test_token_without_a_user_id_is_refused_on_a_pinned_route(
    sub: str | None,
    content_proxy: str,
    content_upstream: ContentUpstream,
    mint: Any,
    client: aiohttp.ClientSession,
) -> None:
    claims: dict[str, Any] = {"aud": AUDIENCE, "scopes": ["items:read"]}
    if sub is not None:
        claims["sub"] = sub
    headers = {"Authorization": f"Bearer {mint(claims)}"}
    got, answer = await call(client, "GET", content_proxy + "/items", headers)
    assert (got, answer["error"]) == (403, "insufficient_scope")
    assert answer["detail"] == "the token carries no user id, and this route is scoped to its caller"
    content_upstream.assert_nothing_forwarded()


async def test_head_on_a_response_checked_route_is_refused(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    async with client.head(
        content_proxy + "/entity/1?owner=bob", headers=bearer(mint, "items:read")
    ) as response:
        assert response.status == 405
    content_upstream.assert_nothing_forwarded()


async def test_declared_body_over_the_bound_is_refused_before_100_continue(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any
) -> None:
    host, port = content_proxy.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    token = bearer(mint, "items:write")["Authorization"]
    head = (
        f"POST /items HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")  # never "100 Continue": the client keeps its body
    content_upstream.assert_nothing_forwarded()


async def test_owner_lookup_the_upstream_fails_is_a_502_and_nothing_is_written(
    content_proxy: str, content_upstream: ContentUpstream, mint: Any, client: aiohttp.ClientSession
) -> None:
    got, answer = await call(
        client, "DELETE", content_proxy + "/things/alice-boom", bearer(mint, "items:write")
    )
    assert (got, answer["error"]) == (502, "upstream_unavailable")
    assert [s.method for s in content_upstream.requests] == ["GET"]
