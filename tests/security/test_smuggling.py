"""Request smuggling over raw sockets: framing the proxy and the upstream could read differently is refused,
and a request hidden behind another (pipelined, inside a body, behind an upgrade) is judged on its own."""

from __future__ import annotations

import asyncio

import pytest

from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import AttackProxyFactory, RunningProxy
from tests.rigs.raw import exchange, parse_answers, raw_http
from tests.rigs.tapped import TappedUpstream

pytestmark = pytest.mark.usefixtures("upstream")

SMUGGLED = b"GET /sessions HTTP/1.1\r\nHost: proxy.test\r\n\r\n"


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _head(request_line: str, *headers: str) -> bytes:
    return "\r\n".join([request_line, "Host: proxy.test", *headers]).encode() + b"\r\n\r\n"


async def _refused_400(proxy: RunningProxy, upstream: TappedUpstream, request: bytes) -> None:
    answers = await exchange(proxy.port, request)
    assert [a.status for a in answers] == [400]
    assert answers[0].json()["error"] == "bad_request"
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "framing",
    [
        ("Content-Length: 4", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 4"),
        ("Content-Length: 0", "Transfer-Encoding: chunked"),
    ],
)
async def test_content_length_with_transfer_encoding_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, framing: tuple[str, str]
) -> None:
    request = _head("POST /public/x HTTP/1.1", *framing) + _chunked(SMUGGLED)
    await _refused_400(proxy, upstream, request)


@pytest.mark.parametrize("lengths", [("5", "6"), ("5", "5"), ("5, 6", None), ("5, 5", None), ("+5", None)])
async def test_two_content_lengths_are_refused(
    proxy: RunningProxy, upstream: TappedUpstream, lengths: tuple[str, str | None]
) -> None:
    headers = [f"Content-Length: {n}" for n in lengths if n is not None]
    await _refused_400(proxy, upstream, _head("POST /public/x HTTP/1.1", *headers) + b"hello!")


@pytest.mark.parametrize(
    "header",
    [
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: \x0bchunked",
    ],
    ids=[
        "chunked-identity",
        "xchunked",
        "space-before-colon",
        "identity",
        "gzip-only",
        "gzip-then-chunked",
        "twice",
        "vertical-tab",
    ],
)
async def test_obfuscated_transfer_encoding_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, header: str
) -> None:
    await _refused_400(proxy, upstream, _head("POST /public/x HTTP/1.1", header) + _chunked(SMUGGLED))


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\nX-Long: a\r\n  folded\r\nConnection: close\r\n\r\n",
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\nX-Long: a\r\n\tfolded\r\nConnection: close\r\n\r\n",
        b"GET /public/x HTTP/1.1\r\n Host: proxy.test\r\nConnection: close\r\n\r\n",
    ],
    ids=["space-fold", "tab-fold", "first-header-folded"],
)
async def test_obs_fold_header_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, request_bytes: bytes
) -> None:
    await _refused_400(proxy, upstream, request_bytes)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /public/x HTTP/1.1\nHost: proxy.test\nConnection: close\n\n",
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\rX: y\r\nConnection: close\r\n\r\n",
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\nX-Null: a\x00b\r\nConnection: close\r\n\r\n",
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\nX Bad: a\r\nConnection: close\r\n\r\n",
        b"GET /public/x HTTP/1.1\r\nHost: proxy.test\r\n: empty-name\r\nConnection: close\r\n\r\n",
    ],
    ids=["bare-lf", "bare-cr", "nul-in-value", "space-in-name", "empty-name"],
)
async def test_malformed_line_endings_and_names_are_refused(
    proxy: RunningProxy, upstream: TappedUpstream, request_bytes: bytes
) -> None:
    await _refused_400(proxy, upstream, request_bytes)


async def test_pipelined_unauthorized_request_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory
) -> None:
    first = _head("GET /agents HTTP/1.1", f"Authorization: Bearer {token('agents:read')}")
    second = _head("GET /sessions HTTP/1.1")
    third = _head(
        "DELETE /sessions/s1 HTTP/1.1", f"Authorization: Bearer {token('agents:read')}", "Connection: close"
    )
    answers = await exchange(proxy.port, first + second + third)
    assert [a.status for a in answers] == [200, 401, 403]
    assert [r.raw_path for r in upstream.requests] == ["/agents"]


async def test_request_smuggled_in_a_chunked_body_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream
) -> None:
    # No token: the body (which holds a request) is discarded, and the request after it is judged alone.
    first = _head("POST /agents/a/runs HTTP/1.1", "Transfer-Encoding: chunked") + _chunked(SMUGGLED)
    second = _head("GET /sessions HTTP/1.1", "Connection: close")
    answers = await exchange(proxy.port, first + second)
    assert answers and all(a.status == 401 for a in answers)
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_smuggled_in_an_authorized_body_stays_a_body(
    proxy: RunningProxy, upstream: TappedUpstream, token: TokenFactory, chunked: bool
) -> None:
    auth = f"Authorization: Bearer {token('agents:run')}"
    if chunked:
        request = _head(
            "POST /agents/a/runs HTTP/1.1", auth, "Transfer-Encoding: chunked", "Connection: close"
        )
        request += _chunked(SMUGGLED)
    else:
        framing = f"Content-Length: {len(SMUGGLED)}"
        request = _head("POST /agents/a/runs HTTP/1.1", auth, framing, "Connection: close") + SMUGGLED
    answers = await exchange(proxy.port, request)
    assert [a.status for a in answers] == [200]
    received = upstream.only()
    assert (received.method, received.raw_path, received.body) == ("POST", "/agents/a/runs", SMUGGLED)


async def test_request_behind_a_refused_websocket_upgrade_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream
) -> None:
    upgrade = _head(
        "GET /ws/chat HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    )
    answers = await exchange(proxy.port, upgrade + _head("GET /sessions HTTP/1.1", "Connection: close"))
    assert [a.status for a in answers] == [401, 401]
    upstream.assert_nothing_forwarded()


async def test_request_behind_an_h2c_upgrade_is_refused(
    start_proxy: AttackProxyFactory, upstream: TappedUpstream
) -> None:
    # aiohttp drops what follows a non-WebSocket upgrade request; the head timeout then ends the connection.
    proxy = await start_proxy(head_timeout=0.5)
    upgrade = _head(
        "GET /public/x HTTP/1.1",
        "Upgrade: h2c",
        "Connection: Upgrade, HTTP2-Settings",
        "HTTP2-Settings: AAMAAABkAAQ",
    )
    data = await raw_http(proxy.port, upgrade + _head("GET /sessions HTTP/1.1", "Connection: close"))
    assert [a.status for a in parse_answers(data)] == [200]
    received = upstream.only()
    assert received.raw_path == "/public/x"
    assert received.header("Upgrade") == [] and received.header("HTTP2-Settings") == []


async def test_expect_continue_is_not_granted_to_a_denied_request(
    proxy: RunningProxy, upstream: TappedUpstream
) -> None:
    # A denied client is never invited to upload: the first thing it reads is the 401.
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        writer.write(_head("POST /agents/a/runs HTTP/1.1", "Content-Length: 5", "Expect: 100-continue"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 401 ")
    upstream.assert_nothing_forwarded()


@pytest.mark.parametrize("version", ["HTTP/1.2", "HTTP/2.0", "HTTP/3.0", "HTTP/1.1x", "HTTPS/1.1", "HTTP/1"])
async def test_unknown_http_version_is_refused(
    proxy: RunningProxy, upstream: TappedUpstream, version: str
) -> None:
    await _refused_400(proxy, upstream, _head(f"GET /public/x {version}", "Connection: close"))


async def test_transfer_encoding_on_http10_is_refused(proxy: RunningProxy, upstream: TappedUpstream) -> None:
    # RFC 9112 §6.1: HTTP/1.0 has no transfer codings; a server that reads the body by Content-Length (or to
    # the end of the connection) would see other requests in it.
    request = b"POST /public/x HTTP/1.0\r\nHost: proxy.test\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(
        SMUGGLED
    )
    await _refused_400(proxy, upstream, request)
