"""The tapped upstream: answers every request with a JSON echo, and counts every connection and byte that
reaches it below the HTTP parser.

So "nothing was forwarded" means no connection and no byte, not merely "no request the upstream's parser
accepted": a smuggled fragment the upstream would refuse still counts as forwarded.

A test that needs answers of its own (an owner lookup, a /config document, an MCP server's stream) subclasses
TappedUpstream and overrides `answer`; recording and the tap stay the rig's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from tests.rigs.raw import HeaderLines
from tests.rigs.upstream import serving


@dataclass(frozen=True)
class Received(HeaderLines):
    method: str
    raw_path: str  # path and query exactly as they arrived
    headers: tuple[tuple[str, str], ...]
    body: bytes


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
    """Answers every request with a JSON echo of what it received (`answer` first, in a subclass); WebSocket
    upgrades echo."""

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
        answered = await self.answer(request)
        if answered is not None:
            return answered
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str(f"echo:{msg.data}")
            return ws
        return web.json_response({"raw_path": received.raw_path, "method": received.method})

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """A subclass's own answer to a request already recorded (its body is read: `await request.read()`
        returns it again); None leaves the request to the echo."""
        del request
        return None

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


Tapped = TypeVar("Tapped", bound=TappedUpstream)


@asynccontextmanager
async def serving_tapped(up: Tapped) -> AsyncIterator[Tapped]:
    """`up` (a TappedUpstream or a subclass with answers of its own) served on 127.0.0.1, port chosen by
    the OS; stopped when the block ends."""
    async with serving(up.server()) as url:
        up.url = url
        yield up


@asynccontextmanager
async def tapped_upstream() -> AsyncIterator[TappedUpstream]:
    async with serving_tapped(TappedUpstream()) as up:
        yield up
