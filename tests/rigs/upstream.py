"""The recording upstream: a real aiohttp server on 127.0.0.1 that records every request (body hashed, not
held) and offers endpoints a test steers (held SSE streams, slow answers, resets, websockets).

The slow and streaming endpoints wait on asyncio.Events the test sets, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.rigs.raw import HeaderLines

BLOCK = bytes(range(256)) * 1024  # 256 KiB of a known pattern: big bodies are this, repeated


def pattern_hash(size: int) -> str:
    """sha256 of `size` bytes of the BLOCK pattern, computed without holding them."""
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(BLOCK))
    for _ in range(whole):
        digest.update(BLOCK)
    digest.update(BLOCK[:rest])
    return digest.hexdigest()


async def pattern_body(size: int) -> AsyncIterator[bytes]:
    whole, rest = divmod(size, len(BLOCK))
    for _ in range(whole):
        yield BLOCK
    if rest:
        yield BLOCK[:rest]


@dataclass(frozen=True)
class Recorded(HeaderLines):
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    body_length: int
    peer_port: int


@dataclass
class RecordingUpstream:
    """Records every request; offers the endpoints the integration tests steer."""

    requests: list[Recorded] = field(default_factory=list)
    sse_release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # request heads, as they come
    cut_short: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # requests whose body broke off
    slow_waiting: asyncio.Event = field(default_factory=asyncio.Event)  # a request is parked on slow_release
    sse_gone: asyncio.Event = field(default_factory=asyncio.Event)  # the proxy hung up on a held stream
    ws_closes: asyncio.Queue[tuple[int, str]] = field(default_factory=asyncio.Queue)  # close frames received
    url: str = ""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        first = request.path.split("/")[1] if request.path.count("/") else ""
        if first in ("ws", "ws-refuse"):
            self.requests.append(await _record(request))
            return await (_ws_echo(self, request) if first == "ws" else _refuse_upgrade())
        self.arrived.put_nowait(request.raw_path)
        try:
            recorded = await _record(request)
        except (asyncio.CancelledError, aiohttp.ClientPayloadError, ConnectionError):
            self.cut_short.put_nowait(request.raw_path)  # the body never completed
            raise
        self.requests.append(recorded)
        special = _ENDPOINTS.get(first)
        if special is not None:
            return await special(self, request)
        return web.json_response(
            {"raw_path": recorded.raw_path, "sha256": recorded.body_sha256, "length": recorded.body_length},
            headers={"X-Upstream": "recorder"},
        )

    def last(self) -> Recorded:
        assert self.requests, "the upstream received nothing"
        return self.requests[-1]


async def _record(request: web.BaseRequest) -> Recorded:
    digest, length = hashlib.sha256(), 0
    async for chunk in request.content.iter_chunked(len(BLOCK)):
        digest.update(chunk)
        length += len(chunk)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Recorded(
        request.method,
        request.raw_path,
        tuple((k.decode("utf-8"), v.decode("utf-8")) for k, v in request.raw_headers),
        digest.hexdigest(),
        length,
        peer[1] if peer else 0,
    )


async def _sse(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(b"event: step\ndata: first\n\n")
    try:
        await up.sse_release.wait()  # the stream stays open until the test has seen the first event
    except asyncio.CancelledError:
        up.sse_gone.set()  # the upstream server cancels its handler when the connection drops
        raise
    await resp.write(b"event: step\ndata: second\n\n")
    await resp.write_eof()
    return resp


async def _sse_quiet(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    # The head goes out at once, the first event only once the test releases it.
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await up.sse_release.wait()
    await resp.write(b"event: step\ndata: late\n\n")
    await resp.write_eof()
    return resp


async def _download(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    size = int(request.path.split("/")[2])
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("chunked") != "1":
        resp.content_length = size
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    async for chunk in pattern_body(size):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _slow(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    up.slow_waiting.set()
    await up.slow_release.wait()  # headers only once the test says so
    return web.Response(text="slow done")


async def _reset(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("chunked") != "1":
        resp.content_length = 10 * len(BLOCK)
    await resp.prepare(request)
    await resp.write(BLOCK)
    await resp.drain()
    assert request.transport is not None
    request.transport.abort()  # mid-body: neither the promised length nor a last chunk ever comes
    return resp


async def _chunked(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for part in (b"one,", b"two,", b"three"):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def _status(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    code = int(request.path.split("/")[2])
    body = None if code in (204, 304) else b"status body"
    return web.Response(status=code, reason="Custom Reason", body=body, headers={"Location": "/elsewhere"})


async def _hop(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    gz = hashlib.sha256(b"pretend this is gzip").digest()
    headers = [
        ("Connection", "X-Private-Hop"),
        ("X-Private-Hop", "secret"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authenticate", "Basic"),
        ("Trailer", "X-Checksum"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/"),
        ("Content-Encoding", "gzip"),
        ("Content-Type", "application/octet-stream"),
    ]
    return web.Response(body=gz, headers=CIMultiDict(headers))


async def _agents(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    return web.json_response([{"id": "alpha", "name": "Alpha"}, {"id": "beta", "name": "Beta"}])


async def _ws_echo(up: RecordingUpstream, request: web.BaseRequest) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"), autoclose=False)
    await ws.prepare(request)
    while True:
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT and msg.data.startswith("close:"):
            _, code, reason = msg.data.split(":", 2)
            await ws.close(code=int(code), message=reason.encode())
        elif msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo:{msg.data}|{request.headers.get('X-Auth-User-Id', '')}")
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
        elif msg.type is aiohttp.WSMsgType.CLOSE:
            up.ws_closes.put_nowait((int(msg.data), msg.extra or ""))
            await ws.close(code=int(msg.data), message=(msg.extra or "").encode())
            return ws
        else:
            return ws


async def _refuse_upgrade() -> web.StreamResponse:
    return web.Response(status=403, text="no websockets here")


_ENDPOINTS: dict[str, Callable[[RecordingUpstream, web.BaseRequest], Awaitable[web.StreamResponse]]] = {
    "sse": _sse,
    "sse-quiet": _sse_quiet,
    "download": _download,
    "slow": _slow,
    "reset": _reset,
    "chunked": _chunked,
    "status": _status,
    "hop": _hop,
    "agents": _agents,
}


@asynccontextmanager
async def serving(server: web.Server) -> AsyncIterator[str]:
    """Serve `server` on 127.0.0.1 with an OS-chosen port; yields its http:// URL, cleans up on exit."""
    runner = web.ServerRunner(server, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[RecordingUpstream]:
    """A started RecordingUpstream; held streams are released before it stops."""
    up = RecordingUpstream()
    # auto_decompress off: the recorder hashes the bytes that arrived, not what they decode to.
    server = web.Server(up.handle, access_log=None, auto_decompress=False, handler_cancellation=True)
    async with serving(server) as url:
        up.url = url
        try:
            yield up
        finally:
            up.sse_release.set()
            up.slow_release.set()
