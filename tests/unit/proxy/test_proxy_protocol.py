"""The proxied port's connections on a real loopback socket, with a handler of the test's own: limits,
refusals, pipelining order, keep-alive, upgrades and the head timeout, below any gate."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httptools
import pytest

from authproxy.answers.table import OwnAnswer
from authproxy.proxy.client_exchange import ClientExchange
from authproxy.proxy.protocol import MAX_FIELD_SIZE, MAX_HEADERS, MAX_LINE_SIZE, Listener, parse_error_answer
from tests.rigs.polling import poll
from tests.rigs.raw import parse_answers

Handler = Callable[[ClientExchange], Awaitable[None]]


async def _echo(exchange: ClientExchange) -> None:
    body = b""
    while chunk := await exchange.content.readany():
        body += chunk
    fields = {
        "method": exchange.method,
        "path": exchange.raw_path,
        "body": body.decode(),
        "headers": list(exchange.headers.items()),
    }
    await exchange.respond(200, [("Content-Type", "application/json")], json.dumps(fields).encode())


@contextlib.asynccontextmanager
async def _serving(
    handler: Handler = _echo, head_timeout: float = 5.0
) -> AsyncIterator[tuple[int, Listener]]:
    listener = Listener(handler, head_timeout=head_timeout)
    server = await asyncio.get_running_loop().create_server(listener, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], listener
    finally:
        server.close()
        await listener.drain(1.0)
        await server.wait_closed()


async def _talk(port: int, data: bytes, *, within: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        async with asyncio.timeout(within):
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return bytes(received)


def _none_open(listener: Listener) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not listener.connections

    return check


def _get(path: str = "/x", *extra: str, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: proxy.test", *extra]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("request_bytes", "status", "detail"),
    [
        (_get("/" + "a" * MAX_LINE_SIZE), 414, "request line too long"),
        (_get("/x", "X-Big: " + "v" * MAX_FIELD_SIZE), 431, "request header fields too large"),
        (_get("/x", *[f"X-H{i}: v" for i in range(MAX_HEADERS + 1)]), 431, "too many request header fields"),
        (b"G@T /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed or unsupported request method"),
        (_get("/x", "Host: other.test"), 400, "malformed HTTP request"),
        (b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "malformed HTTP request"),  # no Host
        (_get("/x", "Content-Length: 1", "Transfer-Encoding: chunked"), 400, "malformed HTTP request"),
        (_get("/x", "Transfer-Encoding: gzip, chunked"), 400, "malformed HTTP request"),
        (b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "malformed HTTP request"),
    ],
    ids=["line", "field", "count", "method", "two-hosts", "no-host", "cl-te", "te-coding", "te-http10"],
)
async def test_refused_heads_get_our_answer_and_the_connection_closes(
    request_bytes: bytes, status: int, detail: str
) -> None:
    handled: list[str] = []

    async def handler(exchange: ClientExchange) -> None:
        handled.append(exchange.raw_path)
        await _echo(exchange)

    async with _serving(handler) as (port, _):
        data = await _talk(port, request_bytes + _get("/after", close=True))
    answers = parse_answers(data)
    assert [a.status for a in answers] == [status]  # nothing after a refusal is read
    assert answers[0].json() == {"detail": detail, "error": "bad_request"}
    assert answers[0].header("Connection") == ["close"]
    assert handled == []


async def test_an_oversized_field_is_refused_before_it_ends() -> None:
    # llhttp keeps a field's bytes until the field ends: past what any head can hold, we stop waiting (the
    # client, still writing, may see its connection reset before it reads the 431).
    async with _serving() as (port, listener):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Never-Ends: ")
        data = b""
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                writer.write(b"v" * 65536)
                await writer.drain()
            data = await reader.read()
        writer.close()
        await poll(_none_open(listener))  # the connection is gone, not held open for the rest of the field
    if data:
        assert parse_answers(data)[0].status == 431


async def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(exchange: ClientExchange) -> None:
        if exchange.raw_path == "/slow":
            await asyncio.sleep(0.05)
        await _echo(exchange)

    async with _serving(slow_first) as (port, _):
        data = await _talk(port, _get("/slow") + _get("/fast") + _get("/last", close=True))
    assert [a.json()["path"] for a in parse_answers(data)] == ["/slow", "/fast", "/last"]


async def test_a_body_the_handler_left_unread_does_not_become_the_next_request() -> None:
    async def ignores_body(exchange: ClientExchange) -> None:
        await exchange.respond(401, [], b"{}")

    smuggled = _get("/smuggled")
    post = (
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: "
        + str(len(smuggled)).encode()
        + b"\r\n\r\n"
        + smuggled
    )
    async with _serving(ignores_body) as (port, _):
        data = await _talk(port, post + _get("/next", close=True))
    assert [a.status for a in parse_answers(data)] == [401, 401]


async def test_http10_closes_unless_kept_alive() -> None:
    async with _serving() as (port, _):
        data = await _talk(port, b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
        assert [a.json()["path"] for a in parse_answers(data)] == ["/a"]
        kept = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n"
        data = await _talk(port, kept)
    assert [a.json()["path"] for a in parse_answers(data)] == ["/a", "/b"]


async def test_field_names_take_the_registered_spelling_and_values_lose_trailing_space() -> None:
    async with _serving() as (port, _):
        data = await _talk(port, _get("/x", "aUTHORIZATION: Bearer t  ", "x-OdD: v\t", close=True))
    headers = parse_answers(data)[0].json()["headers"]
    assert ["Authorization", "Bearer t"] in headers and ["x-OdD", "v"] in headers


async def test_a_refused_websocket_upgrade_leaves_the_connection_http() -> None:
    upgrade = _get("/ws", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13")
    async with _serving() as (port, _):
        data = await _talk(port, upgrade + _get("/after", close=True))
    assert [a.json()["path"] for a in parse_answers(data)] == ["/ws", "/after"]


async def test_a_refused_h2c_upgrade_ends_the_connection() -> None:
    upgrade = _get("/x", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAAQ")
    async with _serving() as (port, _):
        data = await _talk(port, upgrade + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert [a.status for a in parse_answers(data)] == [200]


async def test_the_head_timeout_closes_an_idle_connection() -> None:
    async with _serving(head_timeout=0.2) as (port, _):
        assert await _talk(port, b"GET /x HTTP/1.1\r\nHost: a\r\n", within=3.0) == b""


async def test_a_client_that_hangs_up_cancels_its_handler() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def waits(exchange: ClientExchange) -> None:
        del exchange
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with _serving(waits) as (port, listener):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_get("/x"))
        await started.wait()
        writer.close()
        async with asyncio.timeout(5):
            await cancelled.wait()
        await poll(_none_open(listener))


async def test_drain_lets_the_answer_in_flight_finish_and_closes_idle_connections() -> None:
    release = asyncio.Event()

    async def waits(exchange: ClientExchange) -> None:
        await release.wait()
        await exchange.respond(200, [], b"done")

    listener = Listener(waits, head_timeout=5.0)
    server = await asyncio.get_running_loop().create_server(listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", port)
    busy.write(_get("/x"))
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)

    async def both_open_one_busy() -> bool:
        return len(listener.connections) == 2 and any(c.busy for c in listener.connections)

    await poll(both_open_one_busy)
    server.close()
    draining = asyncio.ensure_future(listener.drain(5.0))
    assert await idle_reader.read() == b""  # the idle one is closed at once
    release.set()
    data = await busy_reader.read()
    await draining
    await server.wait_closed()
    answer = parse_answers(data)[0]
    assert answer.body == b"done" and answer.header("Connection") == ["close"]
    for writer in (busy, idle):
        writer.close()


async def test_two_writers_held_by_a_slow_client_both_go_on_when_it_reads() -> None:
    # A WebSocket relay writes to the client from both of its pumps: each write that waits for the transport
    # to drain must be woken, not only the last one to wait.
    chunk, count = b"x" * 65536, 160  # 20 MiB: more than loopback socket buffers hold

    async def two_writers(exchange: ClientExchange) -> None:
        await exchange.start(200, [])

        async def writer() -> None:
            for _ in range(count):
                await exchange.write(chunk)

        await asyncio.gather(writer(), writer())
        await exchange.finish()

    async with _serving(two_writers) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_get("/x", close=True))
        await asyncio.sleep(0.2)  # not a wait for a result: the proxy's writes fill the socket meanwhile
        async with asyncio.timeout(10):
            data = await reader.read()
        writer.close()
    answer = parse_answers(data)[0]
    assert len(answer.body) == 2 * count * len(chunk)


async def test_drain_lets_a_request_still_uploading_finish() -> None:
    listener = Listener(_echo, head_timeout=5.0)
    server = await asyncio.get_running_loop().create_server(listener, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    await writer.drain()

    async def one_busy() -> bool:
        return any(c.busy for c in listener.connections)

    await poll(one_busy)
    server.close()
    draining = asyncio.ensure_future(listener.drain(5.0))
    await asyncio.sleep(0)
    writer.write(b"world")  # the rest of the body, after the drain began
    data = await reader.read()
    await draining
    await server.wait_closed()
    writer.close()
    answer = parse_answers(data)[0]
    assert answer.json()["body"] == "helloworld"
    assert answer.header("Connection") == ["close"]


def test_parse_errors_map_to_fixed_answers() -> None:
    for data, answer in [
        (b"G@T / HTTP/1.1\r\n\r\n", OwnAnswer.BAD_METHOD),
        (b"GET / HTTP/9.9\r\n\r\n", OwnAnswer.MALFORMED_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", OwnAnswer.MALFORMED_REQUEST),
    ]:
        parser = httptools.HttpRequestParser(object())
        with pytest.raises(httptools.HttpParserError) as refused:
            parser.feed_data(data)
        assert parse_error_answer(refused.value) is answer
