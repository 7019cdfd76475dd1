"""Upstreams that say how THEY parsed a request body, for the canonical-body tests: the parsers real apps use,
run for real on 127.0.0.1 with OS-chosen ports.

- `starlette_upstream()`: a FastAPI app under uvicorn (httptools, python-multipart). `POST
  /agents/{agent_id}/runs` takes `user_id` as a `Form()` parameter, as AgentOS's run endpoints do; any
  other path reads `await request.json()` when it starts with `/json`, else `await request.form()`.
- `aiohttp_upstream()`: an aiohttp server reading `await request.json()` on `/json…`, else
  `await request.post()`.

`content_config` is the proxy's config in front of either (content rules on `/agents/{agent_id}/runs`,
`/form`, `/json`, `/json/evals` and the MCP notes policy on `/mcp`); `send` posts one body through it.

Each answers a `Reading` as JSON: every (name, value) pair the parser read, in its order (a file part as its
filename and sha256), or the JSON value, or the parse error. Each also keeps every request as it arrived
(`arrivals`, raw body bytes included) and counts every connection and byte below HTTP (`tap`), so "nothing was
forwarded" means not one byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
import uvicorn
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.multipart import MultipartReader
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.keys import mint_token
from tests.rigs.mcp_server import MAX_BODY, MCP_SECTION
from tests.rigs.polling import poll
from tests.rigs.raw import HeaderLines
from tests.rigs.tapped import Tap, _TappedServer
from tests.rigs.upstream import serving

CALLER = "alice"  # the `sub` of every token `token_for` mints; the id pins hold callers to
OTHER = "user_b"  # someone else's id, what an impersonation tries to smuggle through
CONTENT_ROUTES = """\
    "POST /agents/{agent_id}/runs": {scopes: [agents:run], pin: {form.user_id: user_id}}
    "POST /form": {scopes: [items:write], pin: {form.user_id: user_id}}
    "POST /json": {scopes: [items:write], pin: {json:/user_id: user_id}}
    "POST /json/evals": {scopes: [evals:write], items: {json:/agent_id: ["agents:{value}:run"]}}
"""


def content_config(upstream_url: str, secret: bytes) -> str:
    """The integration template with CONTENT_ROUTES in place of its catch-all, and the MCP notes policy."""
    text = config_text(upstream_url, secret).replace('    "* /**": [proxy:use]\n', CONTENT_ROUTES)
    return text + MCP_SECTION.format(max_body=MAX_BODY)


def isolation_config(upstream_url: str, secret: bytes) -> str:
    """The integration template under `preset: agentos` with `user_isolation: true`, no routes of its own."""
    routes = '  routes:\n    "* /**": [proxy:use]\n    "GET /private/**": [private:read]\n'
    return config_text(upstream_url, secret).replace(routes, "  preset: agentos\n  user_isolation: true\n")


@dataclass(frozen=True)
class Guarded:
    """A parser upstream and the proxy in front of it."""

    proxy: str  # the proxy's URL
    upstream: ParserUpstream


def token_for(secret: bytes, *scopes: str, sub: str = CALLER) -> str:
    return mint_token({"sub": sub, "aud": AUDIENCE, "scopes": list(scopes)}, key=secret, ttl=3600)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON answer (a Reading's source on allow, `{"error", "detail"}` on refusal)

    def reading(self) -> Reading:
        assert self.status == 200, f"not allowed: {self.status} {self.body}"
        return Reading.of(self.body)


async def send(http: aiohttp.ClientSession, url: str, body: bytes, content_type: str, token: str) -> Answer:
    """POST `body` exactly as given with `content_type` to `url` (aiohttp sets Content-Length only)."""
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    async with http.post(url, data=body, headers=headers) as response:
        return Answer(response.status, await response.json(content_type=None))


@dataclass(frozen=True)
class Arrival(HeaderLines):
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class Reading:
    """One parser's reading of one body, as its upstream answered it."""

    parser: str  # "fastapi" (the Form route), "starlette", "aiohttp"
    fields: list[tuple[str, Any]]  # form pairs; a file is {"filename", "sha256"}, raw bytes {"sha256"}
    json: Any = None
    error: str | None = None
    user_id: str | None = None  # what FastAPI's `Form(None)` parameter received (the runs route only)

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Reading:
        pairs = [(name, value) for name, value in answer.get("fields", [])]
        return cls(answer["parser"], pairs, answer.get("json"), answer.get("error"), answer.get("user_id"))

    def values(self, name: str) -> list[Any]:
        return [value for key, value in self.fields if key == name]


@dataclass
class ParserUpstream:
    name: str  # "starlette" | "aiohttp"
    tap: Tap = field(default_factory=Tap)
    arrivals: list[Arrival] = field(default_factory=list)
    url: str = ""

    def reset(self) -> None:
        self.arrivals.clear()
        self.tap.connections = self.tap.bytes_in = 0

    def assert_nothing_forwarded(self) -> None:
        assert self.arrivals == [], f"{self.name} received {[a.raw_path for a in self.arrivals]}"
        assert self.tap.bytes_in == 0, f"{self.tap.bytes_in} bytes reached {self.name}"

    def only(self) -> Arrival:
        assert len(self.arrivals) == 1, f"expected one request at {self.name}, got {len(self.arrivals)}"
        return self.arrivals[0]


def _file(data: bytes, filename: str | None) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    return {"sha256": digest} if filename is None else {"filename": filename, "sha256": digest}


def _failure(parser: str, error: BaseException) -> dict[str, Any]:
    return {"parser": parser, "fields": [], "error": f"{type(error).__name__}: {error}"}


# --- FastAPI / Starlette under uvicorn ------------------------------------------------------------------


async def _starlette_fields(request: Request) -> list[list[Any]]:
    out: list[list[Any]] = []
    for name, value in (await request.form()).multi_items():
        if isinstance(value, UploadFile):
            out.append([name, _file(await value.read(), value.filename or "")])
            await value.close()  # its spooled temporary file
        else:
            out.append([name, value])
    return out


async def _starlette_reading(request: Request) -> dict[str, Any]:
    try:
        if request.url.path.startswith("/json"):
            return {"parser": "starlette", "fields": [], "json": await request.json()}
        return {"parser": "starlette", "fields": await _starlette_fields(request)}
    except Exception as error:  # noqa: BLE001 - the rig reports whatever the parser raised, as data
        return _failure("starlette", error)


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/agents/{agent_id}/runs")
    async def run(
        request: Request,
        agent_id: str,
        message: Annotated[str | None, Form()] = None,
        user_id: Annotated[str | None, Form()] = None,
        session_id: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        # The parameters are what AgentOS acts on; the whole form is what the same parse read besides.
        return {"parser": "fastapi", "user_id": user_id, "fields": await _starlette_fields(request)}

    @app.api_route("/{rest:path}", methods=["POST", "PUT", "PATCH"])
    async def any_body(request: Request) -> JSONResponse:
        return JSONResponse(await _starlette_reading(request))

    return app


class _Recorder:
    """ASGI middleware: keeps each request's head and whole body, then replays the body to the app."""

    def __init__(self, app: ASGIApp, arrivals: list[Arrival]) -> None:
        self.app = app
        self.arrivals = arrivals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        query = scope["query_string"].decode("latin-1")
        target = scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        self.arrivals.append(Arrival(scope["method"], target, headers, bytes(body)))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def _tapped_protocol(tap: Tap) -> type[HttpToolsProtocol]:
    class Tapped(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            tap.connections += 1
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            tap.bytes_in += len(data)
            super().data_received(data)

    return Tapped


@asynccontextmanager
async def asgi_serving(app: ASGIApp, tap: Tap) -> AsyncIterator[str]:
    """`app` under uvicorn (httptools) in this event loop on 127.0.0.1, an OS-chosen port; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=_tapped_protocol(tap), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        if task.done():
            task.result()  # a server that died says why
        return server.started

    try:
        await poll(started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def starlette_upstream() -> AsyncIterator[ParserUpstream]:
    up = ParserUpstream("starlette")
    async with asgi_serving(_Recorder(fastapi_app(), up.arrivals), up.tap) as url:
        up.url = url
        yield up


# --- aiohttp ---------------------------------------------------------------------------------------------


class _ReplayRequest(web.BaseRequest):
    """`post()` frames multipart from the bytes `read()` kept, so the handler can keep them too; the rest of
    `post()` (field names, filenames, per-part charsets) is aiohttp's own."""

    async def multipart(self) -> MultipartReader:
        data = await self.read()
        stream = StreamReader(self.protocol, max(2 * len(data), 2**16), loop=asyncio.get_running_loop())
        stream.feed_data(data)
        stream.feed_eof()
        return MultipartReader(self.headers, stream)


def _replay_request(
    message: RawRequestMessage,
    payload: StreamReader,
    protocol: RequestHandler,
    writer: AbstractStreamWriter,
    task: asyncio.Task[None],
) -> web.BaseRequest:
    return _ReplayRequest(message, payload, protocol, writer, task, asyncio.get_running_loop())


async def _aiohttp_reading(request: web.BaseRequest) -> dict[str, Any]:
    try:
        if request.path.startswith("/json"):
            return {"parser": "aiohttp", "fields": [], "json": await request.json()}
        out: list[list[Any]] = []
        for name, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                with value.file:  # a spooled temporary file
                    out.append([name, _file(value.file.read(), value.filename)])
            elif isinstance(value, bytes | bytearray):
                out.append([name, _file(bytes(value), None)])
            else:
                out.append([name, value])
        return {"parser": "aiohttp", "fields": out}
    except Exception as error:  # noqa: BLE001 - the rig reports whatever the parser raised, as data
        return _failure("aiohttp", error)


def _aiohttp_handler(up: ParserUpstream) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers)
        up.arrivals.append(Arrival(request.method, request.raw_path, headers, body))
        return web.json_response(await _aiohttp_reading(request))

    return handle


@asynccontextmanager
async def aiohttp_upstream() -> AsyncIterator[ParserUpstream]:
    up = ParserUpstream("aiohttp")
    server = _TappedServer(
        up.tap, _aiohttp_handler(up), request_factory=_replay_request, access_log=None, max_field_size=65536
    )
    async with serving(server) as url:
        up.url = url
        yield up
