"""Forwarding: what the upstream receives and what the client gets back, byte for byte."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import socket

import aiohttp
import pytest
import structlog
from yarl import URL

from authproxy.runtime import load_runtime
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.raw import raw_exchange
from tests.rigs.upstream import RecordingUpstream


async def test_query_string_reaches_upstream_byte_for_byte(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    target = "/a%20b?x=%2F&y=1+2&z=%7e&empty=&flag"
    url = URL(proxy.url + target, encoded=True)
    async with client.get(url, headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().raw_path == target


async def test_raw_request_target_is_forwarded_unchanged(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    target = "/x/%41%42/caf%C3%A9?q=%C3%A9&q=second&a=b%3Dc&sp=a+b"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: example.test\r\n"
        f"Authorization: {auth['Authorization']}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = await raw_exchange(proxy.url, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert upstream.last().raw_path == target


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_method_is_forwarded(
    method: str,
    proxy: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    async with client.request(method, proxy.url + "/things/1", headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().method == method


async def test_head_gets_headers_without_body(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.head(proxy.url + "/download/1000", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "1000"
        assert await resp.read() == b""
    assert upstream.last().method == "HEAD"


async def test_request_body_with_content_length_arrives_whole(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    body = bytes(range(256)) * 4000
    async with client.post(proxy.url + "/upload", data=body, headers=auth) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.body_sha256 == hashlib.sha256(body).hexdigest()
    assert seen.header("Content-Length") == [str(len(body))]
    assert seen.header("Transfer-Encoding") == []


async def test_chunked_request_body_is_forwarded_chunked(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    parts = [b"alpha-", b"beta-", b"gamma"]

    async def body() -> object:
        for part in parts:
            yield part

    async with client.post(proxy.url + "/upload", data=body(), headers=auth) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.body_sha256 == hashlib.sha256(b"".join(parts)).hexdigest()
    assert seen.header("Transfer-Encoding") == ["chunked"]
    assert seen.header("Content-Length") == []


async def test_chunked_response_is_relayed(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/chunked", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await resp.read() == b"one,two,three"


@pytest.mark.parametrize("code", [201, 204, 302, 304, 404, 418, 500, 503])
async def test_upstream_status_and_reason_pass_through(
    code: int, proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + f"/status/{code}", headers=auth, allow_redirects=False) as resp:
        assert resp.status == code
        assert resp.reason == "Custom Reason"
        assert resp.headers["Location"] == "/elsewhere"  # a redirect is the client's to follow, not ours
        if code not in (204, 304):
            assert await resp.read() == b"status body"


async def test_response_hop_by_hop_headers_are_dropped(
    proxy: RunningProxy, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/hop", headers=auth) as resp:
        body = await resp.read()
    for name in ("X-Private-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Trailer"):
        assert name not in resp.headers, name
    assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    # auto_decompress is off on both hops: the encoded bytes arrive as the upstream sent them.
    assert resp.headers["Content-Encoding"] == "gzip"
    assert body == hashlib.sha256(b"pretend this is gzip").digest()


async def test_request_encoded_body_is_not_decompressed(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    import gzip

    body = gzip.compress(b"compressed payload " * 100)
    headers = {**auth, "Content-Encoding": "gzip", "Content-Type": "text/plain"}
    async with client.post(proxy.url + "/upload", data=body, headers=headers) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.body_sha256 == hashlib.sha256(body).hexdigest()
    assert seen.header("Content-Encoding") == ["gzip"]


async def test_no_default_client_headers_are_added(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    request = (
        f"POST /plain HTTP/1.1\r\nHost: h\r\nAuthorization: {auth['Authorization']}\r\n"
        "Content-Length: 3\r\nConnection: close\r\n\r\nabc"
    ).encode()
    answer = await raw_exchange(proxy.url, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    seen = upstream.last()
    for name in ("User-Agent", "Accept", "Accept-Encoding", "Content-Type"):
        assert seen.header(name) == [], name


async def test_upstream_connections_are_pooled(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    for _ in range(5):
        async with client.get(proxy.url + "/pooled", headers=auth) as resp:
            await resp.read()
    ports = {r.peer_port for r in upstream.requests}
    assert len(ports) == 1


async def test_upstream_host_header_is_the_upstreams_own(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    async with client.get(proxy.url + "/host", headers={**auth, "Host": "public.example"}) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.header("Host") == [upstream.url.removeprefix("http://")]
    assert seen.header("X-Forwarded-Host") == ["public.example"]


async def test_expect_continue_is_answered_after_authorization(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    request = (
        f"PUT /upload HTTP/1.1\r\nHost: h\r\nAuthorization: {auth['Authorization']}\r\n"
        "Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    ).encode()
    host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200 ")
    seen = upstream.last()
    assert seen.body_sha256 == hashlib.sha256(b"hello").hexdigest()
    assert seen.header("Expect") == []


async def test_expect_continue_denied_gets_no_continue(
    proxy: RunningProxy, upstream: RecordingUpstream
) -> None:
    host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"PUT /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")  # the denial comes at once, before any body was sent
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert upstream.requests == []


async def test_denied_request_never_reaches_upstream(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    async with client.get(
        proxy.url + "/private/x", headers={"Authorization": f"Bearer {token('proxy:use')}"}
    ) as r:
        assert r.status == 403
        body = await r.json()
    assert body["error"] == "insufficient_scope"
    assert body["missing_scopes"] == ["private:read"]
    async with client.get(proxy.url + "/private/x") as r:
        assert r.status == 401
    assert upstream.requests == []


async def test_public_route_is_forwarded_without_token(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    async with client.get(proxy.url + "/public/page") as resp:
        assert resp.status == 200
    assert upstream.last().raw_path == "/public/page"


async def test_ambiguous_target_is_refused_before_the_upstream(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    request = (
        f"GET /public/..%2Fprivate/x HTTP/1.1\r\nHost: h\r\nAuthorization: {auth['Authorization']}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer = await raw_exchange(proxy.url, request)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"error":"bad_request"' in answer
    assert upstream.requests == []


async def test_truncated_chunked_upload_never_reaches_upstream_as_complete(
    proxy: RunningProxy, upstream: RecordingUpstream, auth: dict[str, str]
) -> None:
    host, port = proxy.url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: h\r\nAuthorization: {auth['Authorization']}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".encode()
    )
    await writer.drain()
    assert await upstream.arrived.get() == "/upload"  # the upstream is reading the body now
    writer.transport.abort()  # the client vanishes mid-body, before the terminating chunk
    assert await upstream.cut_short.get() == "/upload"
    assert all(r.raw_path != "/upload" for r in upstream.requests)


def _fill_backlog(listener: socket.socket) -> list[socket.socket]:
    """Connections that fill a listener's queue, so the next connect waits for a SYN-ACK that never comes."""
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return fillers


async def test_upstream_connect_timeout_answers_504_json(
    start_proxy: ProxyFactory, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted
        fillers = _fill_backlog(listener)
        try:
            host, port = listener.getsockname()
            proxy = await start_proxy(f"http://{host}:{port}", connect_timeout="200ms")
            async with client.get(proxy.url + "/x", headers=auth) as resp:
                assert resp.status == 504
                assert (await resp.json())["error"] == "upstream_timeout"
        finally:
            for filler in fillers:
                filler.close()


class _BrokenTable:
    """A route table with a bug in it: the proxy's outer boundary must still answer."""

    def match(self, method: str, segments: object) -> None:
        raise RuntimeError("a bug in route matching")


async def test_internal_error_answers_json_500(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    holder = proxy.service.holder
    holder.swap(dataclasses.replace(holder.current, table=_BrokenTable()))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        async with client.get(proxy.url + "/boom", headers=auth) as resp:
            assert resp.status == 500
            assert await resp.json() == {"detail": "internal error", "error": "internal_error"}
    assert any(e["event"] == "unhandled error" and e["log_level"] == "error" for e in logs)
    assert upstream.requests == []


async def test_filtered_listing_is_never_forwarded_unfiltered(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(upstream.url)
    text = proxy.config_path.read_text().replace("policy:\n", "policy:\n  preset: agentos\n", 1)
    proxy.config_path.write_text(text)
    holder = proxy.service.holder
    holder.swap(await asyncio.to_thread(load_runtime, proxy.config_path))
    headers = {"Authorization": f"Bearer {token('agents:alpha:read')}"}
    async with client.get(proxy.url + "/agents", headers=headers) as resp:
        body = await resp.read()
    assert b"beta" not in body  # only items the caller may read, or nothing at all


async def test_listing_that_cannot_be_filtered_answers_502(
    start_proxy: ProxyFactory, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(upstream.url)
    text = proxy.config_path.read_text().replace("policy:\n", "policy:\n  preset: agentos\n", 1)
    proxy.config_path.write_text(text)
    proxy.service.holder.swap(await asyncio.to_thread(load_runtime, proxy.config_path))
    headers = {"Authorization": f"Bearer {token('teams:red:read')}"}
    async with client.get(proxy.url + "/teams", headers=headers) as resp:  # the upstream answers an object
        assert resp.status == 502
        assert (await resp.json())["error"] == "upstream_unavailable"
    assert upstream.last().raw_path == "/teams"
