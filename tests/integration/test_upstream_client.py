"""The lean upstream client against scripted raw-socket upstreams on 127.0.0.1: framing, reuse, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from authproxy.errors import UpstreamTimeout, UpstreamUnavailable
from authproxy.proxy.upstream import UpstreamPool, UpstreamTarget, request_head
from authproxy.proxy.upstream_exchange import Exchange
from tests.rigs.proxy import ProxyFactory

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Scripted:
    """A raw TCP upstream: each accepted connection runs `script`; connections are counted."""

    script: Script
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)


async def read_head(reader: asyncio.StreamReader, upstream: Scripted) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    upstream.heads.append(head)
    return head


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Scripted:
        upstream = Scripted(script)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream.connections += 1
            try:
                await upstream.script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        upstream.port = server.sockets[0].getsockname()[1]
        return upstream

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def proxy_for(start_proxy: ProxyFactory) -> Callable[[int], Awaitable[str]]:
    async def start(port: int) -> str:
        return (await start_proxy(f"http://127.0.0.1:{port}")).url

    return start


def pool_for(upstream: Scripted) -> UpstreamPool:
    target = UpstreamTarget("127.0.0.1", upstream.port, f"127.0.0.1:{upstream.port}", "")
    return UpstreamPool(target, connect_timeout=2.0)


async def get(pool: UpstreamPool, target: str = "/x", method: str = "GET") -> tuple[int, bytes, Exchange]:
    exchange, conn = await pool.open(5.0, head_only=method == "HEAD")
    try:
        assert conn.transport is not None
        conn.transport.write(request_head(method, target, pool.target.host_header, [], chunked=False))
        exchange.request_sent = True
        status, _, _ = await exchange.response_head()
        body = b""
        while chunk := await exchange.read():
            body += chunk
        return status, body, exchange
    finally:
        exchange.release()


def keep_alive_answers(*answers: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        await reader.read()  # hold the connection until the client closes it

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_keep_alive_connection_is_reused(scripted: Callable[[Script], Awaitable[Scripted]]) -> None:
    upstream = await scripted(keep_alive_answers(OK, OK, OK))
    pool = pool_for(upstream)
    for _ in range(3):
        assert (await get(pool))[:2] == (200, b"ok")
    assert upstream.connections == 1
    pool.close()


async def test_head_answer_does_not_swallow_the_next_answer(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    # The HEAD answer announces 5 bytes it never sends; the next answer on the same connection is whole.
    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    upstream = await scripted(keep_alive_answers(head_answer, OK))
    pool = pool_for(upstream)
    assert (await get(pool, method="HEAD"))[:2] == (200, b"")
    assert (await get(pool))[:2] == (200, b"ok")
    assert upstream.connections == 1
    pool.close()


async def test_informational_answers_are_skipped(scripted: Callable[[Script], Awaitable[Scripted]]) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    upstream = await scripted(keep_alive_answers(b"HTTP/1.1 100 Continue\r\n\r\n" + early + OK))
    pool = pool_for(upstream)
    status, body, exchange = await get(pool)
    assert (status, body) == (200, b"ok")
    assert exchange.raw_headers == [(b"Content-Length", b"2")]  # no header of an interim answer leaks
    pool.close()


async def test_bytes_after_the_answer_make_the_connection_unusable(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    # A second answer to one request (response smuggling / pipelining): the first answers the request, the
    # connection is never pooled, and the next request gets a fresh connection and its own answer.
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
    upstream = await scripted(keep_alive_answers(OK + smuggled, OK))
    pool = pool_for(upstream)
    assert (await get(pool))[:2] == (200, b"ok")
    assert not pool._idle
    assert (await get(pool))[:2] == (200, b"ok")
    assert upstream.connections == 2
    pool.close()


async def test_unsolicited_bytes_on_an_idle_connection_close_it(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)  # the connection is idle in the pool now
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
        await writer.drain()
        await reader.read()

    upstream = await scripted(script)
    pool = pool_for(upstream)
    assert (await get(pool))[:2] == (200, b"ok")
    for _ in range(200):  # poll until the unsolicited bytes arrived and closed the idle connection
        if not pool._idle or not pool._idle[-1].alive:
            break
        await asyncio.sleep(0.01)
    assert not pool._idle or not pool._idle[-1].alive
    pool.close()


async def test_connection_close_answer_is_not_pooled(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    upstream = await scripted(keep_alive_answers(closing))
    pool = pool_for(upstream)
    assert (await get(pool))[:2] == (200, b"ok")
    assert not pool._idle
    pool.close()


async def test_close_delimited_body_ends_with_the_connection(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()

    upstream = await scripted(script)
    pool = pool_for(upstream)
    assert (await get(pool))[:2] == (200, b"all of it")
    assert not pool._idle
    pool.close()


async def test_close_mid_body_is_an_error_not_a_short_body(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()

    upstream = await scripted(script)
    pool = pool_for(upstream)
    with pytest.raises(UpstreamUnavailable, match="mid-body"):
        await get(pool)
    pool.close()


async def test_close_before_answering_is_unavailable_and_never_retried(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader, upstream)

    upstream = await scripted(script)
    pool = pool_for(upstream)
    with pytest.raises(UpstreamUnavailable, match="before answering"):
        await get(pool, "/once")
    assert upstream.connections == 1  # the request may have run: no second attempt
    pool.close()


async def test_pool_recovers_after_a_failed_exchange(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    calls = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbro")
            await writer.drain()
            return  # closed mid-body
        await keep_alive_answers(OK, OK)(reader, writer)

    upstream = await scripted(script)
    pool = pool_for(upstream)
    with pytest.raises(UpstreamUnavailable):
        await get(pool)
    assert (await get(pool))[:2] == (200, b"ok")
    assert (await get(pool))[:2] == (200, b"ok")
    assert upstream.connections == 2
    pool.close()


async def test_silent_upstream_times_out(scripted: Callable[[Script], Awaitable[Scripted]]) -> None:
    release = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()

    upstream = await scripted(script)
    pool = pool_for(upstream)
    exchange, conn = await pool.open(0.2, head_only=False)
    assert conn.transport is not None
    conn.transport.write(request_head("GET", "/slow", "x", [], chunked=False))
    exchange.request_sent = True
    with pytest.raises(UpstreamTimeout):
        await exchange.response_head()
    exchange.release()
    release.set()
    assert not pool._idle
    pool.close()


def test_request_head_refuses_a_line_break_in_a_value() -> None:
    with pytest.raises(UpstreamUnavailable):
        request_head("GET", "/", "h", [("X-A", "ok\r\nX-Injected: 1")], chunked=False)
    with pytest.raises(UpstreamUnavailable):
        request_head("GET", "/", "h", [("X-A", "ok\nX-Injected: 1")], chunked=False)
    head = request_head("GET", "/a?b", "h:1", [("X-A", "v")], chunked=True)
    assert head == b"GET /a?b HTTP/1.1\r\nHost: h:1\r\nX-A: v\r\nTransfer-Encoding: chunked\r\n\r\n"


# --- through the proxy -----------------------------------------------------------------------------------


async def test_answer_before_the_request_body_ends_is_relayed_and_the_connection_dropped(
    scripted: Callable[[Script], Awaitable[Scripted]],
    proxy_for: Callable[[int], Awaitable[str]],
) -> None:
    # The upstream refuses an upload after its head (a 413 before the body): the client gets that answer,
    # and the half-sent connection is never reused for the next request.
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"POST"):
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
            await writer.drain()
            await reader.read()
            return
        writer.write(OK)
        await writer.drain()
        await reader.read()

    upstream = await scripted(script)
    url = await proxy_for(upstream.port)
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1024
        await release.wait()
        yield b"y" * 1024

    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/public/upload", data=body()) as resp:
            assert resp.status == 413
            assert await resp.read() == b"big"
        release.set()
        async with client.get(url + "/public/after") as resp:
            assert resp.status == 200
    assert upstream.connections == 2


async def test_upstream_close_mid_body_aborts_the_client_connection(
    scripted: Callable[[Script], Awaitable[Scripted]],
    proxy_for: Callable[[int], Awaitable[str]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000)
        await writer.drain()
        await asyncio.sleep(0.05)

    upstream = await scripted(script)
    url = await proxy_for(upstream.port)
    async with aiohttp.ClientSession() as client, client.get(url + "/public/cut") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_chunked_request_body_is_reframed_for_the_upstream(
    scripted: Callable[[Script], Awaitable[Scripted]],
    proxy_for: Callable[[int], Awaitable[str]],
) -> None:
    received: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader, upstream)
        assert b"transfer-encoding: chunked" in head.lower()
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        received.append(body)
        writer.write(OK)
        await writer.drain()
        await reader.read()

    upstream = await scripted(script)
    url = await proxy_for(upstream.port)

    async def body() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    async with aiohttp.ClientSession() as client, client.post(url + "/public/chunked", data=body()) as resp:
        assert resp.status == 200
    assert received == [b"one,two,three"]


# --- chunked trailers never become header fields ---------------------------------------------------------

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
TRAILERS = b"0\r\nSet-Cookie: session=attacker\r\nLocation: https://evil.example/\r\nX-Trailer: 1\r\n\r\n"


def trailed(later: asyncio.Event | None) -> Script:
    """A chunked answer whose trailers come in the same write as the body, or once `later` is set."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if later is None:
            writer.write(CHUNKED_HEAD + b"5\r\nhello\r\n" + TRAILERS)
        else:
            writer.write(CHUNKED_HEAD + b"5\r\nhello\r\n")
            await writer.drain()
            await later.wait()
            writer.write(TRAILERS)
        await writer.drain()
        await reader.read()

    return script


async def test_trailers_in_the_body_write_are_not_headers_of_the_answer(
    scripted: Callable[[Script], Awaitable[Scripted]],
) -> None:
    pool = pool_for(await scripted(trailed(None)))
    status, body, exchange = await get(pool)
    assert (status, body) == (200, b"hello")
    assert [name.lower() for name, _ in exchange.raw_headers] == [b"transfer-encoding", b"content-type"]
    assert pool._idle  # the answer ended cleanly: trailers are part of the message, not stray bytes
    pool.close()


@pytest.mark.parametrize("later", [False, True], ids=["same-write", "later-write"])
async def test_trailers_never_reach_the_client_as_headers(
    scripted: Callable[[Script], Awaitable[Scripted]],
    proxy_for: Callable[[int], Awaitable[str]],
    later: bool,
) -> None:
    sent = asyncio.Event() if later else None
    url = await proxy_for((await scripted(trailed(sent))).port)
    async with aiohttp.ClientSession() as client, client.get(url + "/public/trailed") as resp:
        assert resp.status == 200
        if sent is not None:
            assert await resp.content.readexactly(5) == b"hello"  # the head is out before the trailers come
            sent.set()
        assert await resp.read() == (b"" if sent is not None else b"hello")
        names = {name.lower() for name in resp.headers}
    assert not names & {"set-cookie", "location", "x-trailer"}, names
