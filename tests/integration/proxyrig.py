"""Parts of the integration rig (fixtures in conftest.py): the recording upstream, the proxy config, and
the `authproxy serve` subprocess handle.

The upstream's slow and streaming endpoints wait on asyncio.Events the test sets, so no test sleeps; a
subprocess announces its ports in its `listening` log line, so nothing guesses when it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from authproxy.serve.lifecycle import ProxyService

AUDIENCE = "authproxy-tests"
IDENTITY_HEADERS = ("X-Auth-User-Id", "X-Auth-Session-Id", "X-Auth-Scopes")
BLOCK = bytes(range(256)) * 1024  # 256 KiB of a known pattern: big bodies are this, repeated
AUTHPROXY = str(Path(sys.executable).with_name("authproxy"))

CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: {connect_timeout}
  read_timeout: {read_timeout}
jwt:
  algorithms: [{algorithms}]
  keys:
{keys}
  audience: {audience}
policy:
  admin_scope: proxy:admin
  public:
    - /public/**
  routes:
    "* /**": [proxy:use]
    "GET /private/**": [private:read]
forward:
  identity_headers:
    user_id: X-Auth-User-Id
    session_id: X-Auth-Session-Id
    scopes: X-Auth-Scopes
  strip_authorization: {strip_authorization}
logging:
  level: info
  format: json
"""


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


# --- the recording upstream --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: tuple[tuple[str, str], ...]
    body_sha256: str
    body_length: int
    peer_port: int

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


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


# --- the proxy, in process -----------------------------------------------------------------------------


@dataclass
class RunningProxy:
    service: ProxyService
    url: str  # the proxied port
    admin_url: str
    config_path: Path


class ProxyFactory(Protocol):
    async def __call__(self, upstream_url: str, **options: Any) -> RunningProxy: ...


def config_text(upstream_url: str, secret: bytes, **options: Any) -> str:
    values = {
        "upstream": upstream_url,
        "connect_timeout": "2s",
        "read_timeout": "30s",
        "keys": f'    - secret: "{secret.decode()}"',
        "audience": AUDIENCE,
        "strip_authorization": "false",
        "algorithms": "HS256",
    }
    values.update(options)
    return CONFIG.format(**values)


class TokenFactory(Protocol):
    def __call__(self, *scopes: str, sub: str = "user-1", **claims: Any) -> str: ...


# --- the proxy, as `authproxy serve` in a subprocess ----------------------------------------------------


class LogLines:
    """The JSON lines a subprocess prints, collected as they come; `wait_for` wakes on each new line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.ended = False
        self._changed = asyncio.Condition()

    async def collect(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(line)
                async with self._changed:
                    self.lines.append(parsed)
                    self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    def find(self, event: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line.get("event") == event), None)

    async def wait_for(self, event: str) -> dict[str, Any]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.ended or self.find(event) is not None)
        found = self.find(event)
        assert found is not None, f"the process ended without logging {event!r}"
        return found


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    log: LogLines
    url: str = ""
    admin_url: str = ""
    stderr: bytes = b""

    def rss_kib(self, field_name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field_name} not in /proc/{self.process.pid}/status")

    async def finish(self) -> int:
        """Wait for the exit; the code, with stdout fully collected."""
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()
        return await self.process.wait()


class ServeFactory(Protocol):
    async def __call__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess: ...


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` as written on a fresh connection; everything the proxy sends back until it closes."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data
