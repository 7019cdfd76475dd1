"""Secure defaults: identity headers on without a `forward:` section, client copies stripped in every spelling
even when setting them is off, and no aiohttp version banner on any answer of our own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import RunningProxy
from tests.rigs.raw import raw_exchange
from tests.rigs.upstream import RecordingUpstream

SERVER = "authproxy"  # no version, no framework name

StartWith = Callable[[str, str], Awaitable[RunningProxy]]
_FORWARD = re.compile(r"^forward:\n(?:  .*\n)+", re.MULTILINE)


@pytest.fixture
async def start_with(tmp_path: Path, hs_secret: bytes) -> AsyncIterator[StartWith]:
    """A proxy whose config is the rig's with its `forward:` section replaced by `forward` ("" drops it)."""
    started: list[ProxyService] = []

    async def start(upstream_url: str, forward: str) -> RunningProxy:
        text = _FORWARD.sub(forward, config_text(upstream_url, hs_secret))
        assert ("forward:" in text) == bool(forward)
        path = tmp_path / f"proxy-{len(started)}.yaml"
        path.write_text(text)
        service = ProxyService(RuntimeHolder(await asyncio.to_thread(load_runtime, path)), grace=1.0)
        started.append(service)
        await service.start()
        (host, port), (admin_host, admin_port) = service.proxy_address, service.admin_address
        return RunningProxy(service, f"http://{host}:{port}", f"http://{admin_host}:{admin_port}", path)

    yield start
    for service in reversed(started):
        await service.stop()


def _identity(upstream: RecordingUpstream) -> list[tuple[str, str]]:
    return [(k, v) for k, v in upstream.last().headers if k.lower().replace("_", "-").startswith("x-auth-")]


def _spoofing_request(bearer: str) -> bytes:
    return (
        f"GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {bearer}\r\n"
        "X-Auth-User-Id: admin\r\nx_auth_user_id: admin\r\nX_AUTH_SCOPES: proxy:admin\r\n"
        "x-auth-session-id: stolen\r\nConnection: close, X-Auth-User-Id, X-Auth-Scopes\r\n\r\n"
    ).encode()


async def test_identity_headers_are_set_and_spoofs_stripped_without_a_forward_section(
    start_with: StartWith, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    proxy = await start_with(upstream.url, "")
    bearer = token("proxy:use", "b:read", sub="alice", session_id="s-7")
    assert (await raw_exchange(proxy.url, _spoofing_request(bearer))).startswith(b"HTTP/1.1 200 ")
    assert sorted(_identity(upstream)) == [
        ("X-Auth-Scopes", "b:read proxy:use"),
        ("X-Auth-Session-Id", "s-7"),
        ("X-Auth-User-Id", "alice"),
    ]


async def test_turning_identity_headers_off_still_strips_client_copies(
    start_with: StartWith, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    proxy = await start_with(upstream.url, "forward:\n  identity_headers: {}\n")
    bearer = token("proxy:use", sub="alice", session_id="s-7")
    assert (await raw_exchange(proxy.url, _spoofing_request(bearer))).startswith(b"HTTP/1.1 200 ")
    assert _identity(upstream) == []


async def test_a_renamed_identity_header_strips_the_default_names_too(
    start_with: StartWith, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    proxy = await start_with(upstream.url, "forward:\n  identity_headers:\n    user_id: X-Remote-User\n")
    request = _spoofing_request(token("proxy:use", sub="alice")).replace(
        b"\r\n\r\n", b"\r\nX_Remote_User: admin\r\n\r\n"
    )
    assert (await raw_exchange(proxy.url, request)).startswith(b"HTTP/1.1 200 ")
    assert _identity(upstream) == []
    assert upstream.last().header("X-Remote-User") == ["alice"]
    assert upstream.last().header("X_Remote_User") == []


def _server_of(answer: bytes) -> list[bytes]:
    head = answer.partition(b"\r\n\r\n")[0]
    return [
        line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"server:")
    ]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",  # 401 from the gate
        b"GET /a/../b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",  # 400 from the gate
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",  # 431 from the parser
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",  # 414 from the parser
        b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n",  # 400 from the parser
    ],
    ids=["missing-token", "bad-target", "header-too-large", "line-too-long", "bad-method"],
)
async def test_our_answers_carry_no_version_banner(
    request_bytes: bytes, start_with: StartWith, upstream: RecordingUpstream
) -> None:
    proxy = await start_with(upstream.url, "")
    answer = await raw_exchange(proxy.url, request_bytes)
    assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4"))
    assert _server_of(answer) == [SERVER.encode()]
    assert b"aiohttp" not in answer
    assert upstream.requests == []


async def test_upstream_failure_and_websocket_refusal_carry_no_version_banner(
    start_with: StartWith,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    unused_tcp_port: int,
) -> None:
    gone = await start_with(f"http://127.0.0.1:{unused_tcp_port}", "")
    bearer = token("proxy:use")
    request = f"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
    answer = await raw_exchange(gone.url, request.encode())
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert _server_of(answer) == [SERVER.encode()]
    proxy = await start_with(upstream.url, "")
    handshake = {  # no Sec-WebSocket-Key
        "Authorization": f"Bearer {bearer}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
    }
    async with client.get(proxy.url + "/ws", headers=handshake) as resp:
        assert resp.status == 400
        assert await resp.json() == {"detail": "malformed websocket handshake", "error": "bad_request"}
        assert resp.headers.getall("Server") == [SERVER]
    assert upstream.requests == []


async def test_websocket_upgrade_carries_no_version_banner(
    start_with: StartWith, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_with(upstream.url, "")
    headers = {"Authorization": f"Bearer {token('proxy:use')}"}
    async with client.ws_connect(proxy.url + "/ws", headers=headers) as socket:
        await socket.send_str("hi")
        assert (await socket.receive_str()) == "echo:hi|user-1"  # the default identity header arrived
        assert socket._response.headers.getall("Server") == [SERVER]


async def test_admin_port_carries_no_version_banner(
    start_with: StartWith, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    proxy = await start_with(upstream.url, "")
    for path in ("/healthz", "/readyz", "/nowhere"):
        async with client.get(proxy.admin_url + path) as resp:
            assert resp.headers.getall("Server") == [SERVER], path


@pytest.fixture
async def branded_upstream() -> AsyncIterator[str]:
    async def hello(request: web.Request) -> web.Response:
        del request
        return web.Response(text="hi", headers={"Server": "upstream-brand/2"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_proxied_answer_keeps_the_upstreams_server(
    start_with: StartWith, branded_upstream: str, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_with(branded_upstream, "")
    async with client.get(
        proxy.url + "/x", headers={"Authorization": f"Bearer {token('proxy:use')}"}
    ) as resp:
        assert resp.status == 200
        assert resp.headers.getall("Server") == ["upstream-brand/2"]
        assert await resp.text() == "hi"
