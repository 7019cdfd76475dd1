"""Parts of the security rig (fixtures in conftest.py): an upstream that counts every byte that reaches it,
the proxy's policy for the attack suites, and raw HTTP/1.1 over asyncio streams.

The upstream taps its connections below the HTTP parser, so "nothing was forwarded" means no connection
and no byte, not merely "no request the upstream's parser accepted": a smuggled fragment the upstream
would refuse still counts as forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from keyutil import b64url
from multidict import CIMultiDictProxy
from yarl import URL

from authproxy.serve.lifecycle import ProxyService

AUDIENCE = "authproxy-security"
ISSUER = "https://issuer.security.test"
IDENTITY_HEADERS = ("X-Auth-User-Id", "X-Auth-Session-Id", "X-Auth-Scopes")

CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: 2s
  read_timeout: 30s
jwt:
  algorithms: [RS256]
  keys:
    - public_key_file: {public_key}
  audience: {audience}
  issuer: {issuer}
  sources: [{sources}]
  cookie: access_token
policy:
  admin_scope: proxy:admin
  unmapped: {unmapped}
  public:
    - GET /health
    - /public/**
  routes:
    "GET /agents": [agents:read]
    "GET /agents/{{agent_id}}": [agents:read]
    "POST /agents/{{agent_id}}/runs": [agents:run]
    "GET /sessions": [sessions:read]
    "DELETE /sessions/{{session_id}}": [sessions:delete]
    "GET /reports/**": [reports:read]
    "GET /ws/**": [ws:use]
forward:
  identity_headers:
    user_id: X-Auth-User-Id
    session_id: X-Auth-Session-Id
    scopes: X-Auth-Scopes
logging:
  level: warning
  format: json
"""


def config_text(upstream_url: str, public_key: str, **options: Any) -> str:
    values = {
        "upstream": upstream_url,
        "public_key": public_key,
        "audience": AUDIENCE,
        "issuer": ISSUER,
        "sources": "header, cookie",
        "unmapped": "deny",
    }
    values.update(options)
    return CONFIG.format(**values)


# --- the tapped upstream --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Tap:
    """What reached the upstream below HTTP: connections accepted and bytes read."""

    connections: int = 0
    bytes_in: int = 0


class _TappedHandler(RequestHandler):
    tap: Tap  # set by _TappedServer right after construction

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tap.connections += 1
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.tap.bytes_in += len(data)
        super().data_received(data)


class _TappedServer(web.Server):
    def __init__(self, tap: Tap, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tap = tap

    def __call__(self) -> RequestHandler:
        protocol = _TappedHandler(self, loop=self._loop, **self._kwargs)
        protocol.tap = self.tap
        return protocol


@dataclass
class TappedUpstream:
    """Answers every request with a JSON echo of what it received; WebSocket upgrades under /ws echo."""

    tap: Tap = field(default_factory=Tap)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def server(self) -> web.Server:
        # Generous header limits: what the proxy lets through must arrive, not trip the upstream's parser.
        return _TappedServer(
            self.tap, self._handle, access_log=None, handler_cancellation=True, max_field_size=65536
        )

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        received = Received(
            request.method,
            request.raw_path,
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            await request.read(),
        )
        self.requests.append(received)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str(f"echo:{msg.data}")
            return ws
        return web.json_response({"raw_path": received.raw_path, "method": received.method})

    def reset(self) -> None:
        """Forget everything so far (after a legitimate warm-up request)."""
        self.requests.clear()
        self.tap.bytes_in = 0
        self.tap.connections = 0

    def assert_nothing_forwarded(self) -> None:
        assert self.requests == [], f"the upstream received {[r.raw_path for r in self.requests]}"
        assert self.tap.bytes_in == 0, f"{self.tap.bytes_in} bytes reached the upstream"

    def only(self) -> Received:
        assert len(self.requests) == 1, f"expected one request upstream, got {len(self.requests)}"
        return self.requests[0]


# --- the proxy ------------------------------------------------------------------------------------------


@dataclass
class Proxy:
    service: ProxyService
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ProxyFactory(Protocol):
    async def __call__(self, **options: Any) -> Proxy: ...


class TokenFactory(Protocol):
    def __call__(self, *scopes: str, sub: str = "user-1", **claims: Any) -> str: ...


# --- raw HTTP/1.1 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_http(port: int, data: bytes, *, host: str = "127.0.0.1") -> bytes:
    """Send `data` exactly as written on a fresh connection and read until the proxy closes it.

    No half-close: aiohttp drops a connection whose peer sent EOF, answer and all. Requests must end with
    `Connection: close` (or be ones the proxy refuses, which close the connection)."""
    reader, writer = await asyncio.open_connection(host, port)
    received = bytearray()
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()  # the proxy may answer and close before reading all of an oversized head
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
        return bytes(received)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def parse_answers(data: bytes) -> list[Answer]:
    """Split a byte stream into HTTP/1.1 responses (Content-Length or chunked bodies)."""
    answers: list[Answer] = []
    rest = data
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {head[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines))
        names = {k.lower(): v for k, v in headers}
        if "content-length" in names:
            size = int(names["content-length"])
            body, rest = rest[:size], rest[size:]
        elif names.get("transfer-encoding", "").lower() == "chunked":
            body, rest = _dechunk(rest)
        else:
            body, rest = rest, b""
        answers.append(Answer(int(status_line.split()[1]), headers, body))
    return answers


def _dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return bytes(body), data
        body += data[:size]
        data = data[size + 2 :]


async def exchange(port: int, data: bytes) -> list[Answer]:
    return parse_answers(await raw_http(port, data))


def request_bytes(
    target: str, *, method: str = "GET", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request with Host and Connection: close; headers and target exactly as given."""
    lines = [f"{method} {target} HTTP/1.1", "Host: proxy.test"]
    lines += [f"{k}: {v}" for k, v in headers or ()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- tokens and plain requests ----------------------------------------------------------------------------


def rs256_raw(header: bytes, payload: bytes, key: rsa.RSAPrivateKey) -> str:
    """An RS256 token over header and payload bytes exactly as given (duplicate members included), signed
    with a real key: what PyJWT will not produce."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def fetch(
    client: aiohttp.ClientSession,
    proxy: Proxy,
    target: str,
    *,
    method: str = "GET",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request through the proxy; `target` is sent as written (no re-quoting)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    url = URL(proxy.url + target, encoded=True)
    async with client.request(method, url, headers=sent, allow_redirects=False) as response:
        return Reply(response.status, response.headers, await response.read())
