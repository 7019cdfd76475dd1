"""Identity headers reach the upstream only as the proxy set them, from the verified token."""

from __future__ import annotations

import aiohttp
import pytest

from tests.rigs.config import IDENTITY_HEADERS
from tests.rigs.keys import TokenFactory
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.raw import raw_exchange
from tests.rigs.upstream import RecordingUpstream


def identity_seen(upstream: RecordingUpstream) -> dict[str, list[str]]:
    """Every upstream header whose name, normalised, is an identity header name."""
    wanted = {name.lower() for name in IDENTITY_HEADERS}
    seen: dict[str, list[str]] = {}
    for name, value in upstream.last().headers:
        key = name.lower().replace("_", "-")
        if key in wanted:
            seen.setdefault(key, []).append(value)
    return seen


@pytest.mark.parametrize(
    "spoofed",
    [
        [("X-Auth-User-Id", "admin")],
        [("x-auth-user-id", "admin")],
        [("X-AUTH-USER-ID", "admin")],
        [("X_Auth_User_Id", "admin")],
        [("x_auth-user_id", "admin")],
        [("X-Auth-User-Id", "admin"), ("X-Auth-User-Id", "root")],
        [("X-Auth-Scopes", "proxy:admin"), ("x_auth_scopes", "proxy:admin")],
        [("X-Auth-Session-Id", "stolen-session")],
    ],
)
async def test_identity_header_spoofing_is_refused(
    spoofed: list[tuple[str, str]], proxy: RunningProxy, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in spoofed)
    request = (
        f"GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token('proxy:use', sub='alice')}\r\n"
        f"{lines}Connection: close\r\n\r\n"
    ).encode()
    assert (await raw_exchange(proxy.url, request)).startswith(b"HTTP/1.1 200 ")
    assert identity_seen(upstream) == {"x-auth-user-id": ["alice"], "x-auth-scopes": ["proxy:use"]}


async def test_identity_headers_set_from_token_claims(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    bearer = token("proxy:use", "extra:read", sub="alice", session_id="sess-9")
    async with client.get(proxy.url + "/me", headers={"Authorization": f"Bearer {bearer}"}) as resp:
        assert resp.status == 200
    assert identity_seen(upstream) == {
        "x-auth-user-id": ["alice"],
        "x-auth-session-id": ["sess-9"],
        "x-auth-scopes": ["extra:read proxy:use"],
    }


async def test_identity_headers_spoofed_on_public_route_are_removed(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession
) -> None:
    headers = {"X-Auth-User-Id": "admin", "X_Auth_Scopes": "proxy:admin"}
    async with client.get(proxy.url + "/public/page", headers=headers) as resp:
        assert resp.status == 200
    assert identity_seen(upstream) == {}


async def test_connection_naming_an_identity_header_does_not_remove_ours(
    proxy: RunningProxy, upstream: RecordingUpstream, token: TokenFactory
) -> None:
    request = (
        f"GET /me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token('proxy:use', sub='alice')}\r\n"
        "Connection: close, X-Auth-User-Id, X-Custom\r\nX-Custom: hop\r\nX-Auth-User-Id: admin\r\n\r\n"
    ).encode()
    assert (await raw_exchange(proxy.url, request)).startswith(b"HTTP/1.1 200 ")
    assert identity_seen(upstream)["x-auth-user-id"] == ["alice"]
    assert upstream.last().header("X-Custom") == []


async def test_forwarded_headers_are_ours_not_the_clients(
    proxy: RunningProxy, upstream: RecordingUpstream, client: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    spoof = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "for=6.6.6.6",
        "Host": "app.example",
    }
    async with client.get(proxy.url + "/fwd", headers={**auth, **spoof}) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.header("X-Forwarded-For") == ["127.0.0.1"]
    assert seen.header("X-Forwarded-Proto") == ["http"]
    assert seen.header("X-Forwarded-Host") == ["app.example"]
    assert seen.header("Forwarded") == []


@pytest.mark.parametrize("name", ["X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"])
async def test_method_override_header_is_refused(
    name: str,
    proxy: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    async with client.get(proxy.url + "/thing", headers={**auth, name: "DELETE"}) as resp:
        assert resp.status == 200
    seen = upstream.last()
    assert seen.method == "GET"
    assert seen.header(name) == []


async def test_authorization_reaches_upstream_unless_stripped(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    kept = await start_proxy(upstream.url)
    stripped = await start_proxy(upstream.url, strip_authorization="true")
    async with client.get(kept.url + "/a", headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().header("Authorization") == [auth["Authorization"]]
    async with client.get(stripped.url + "/a", headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().header("Authorization") == []


async def test_strip_authorization_removes_the_token_cookie_and_keeps_the_others(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    token = auth["Authorization"].removeprefix("Bearer ")
    cookies = {"Cookie": f"theme=dark; access_token={token}; lang=en"}
    kept = await start_proxy(upstream.url, sources="cookie, header")
    stripped = await start_proxy(upstream.url, sources="cookie, header", strip_authorization="true")
    async with client.get(kept.url + "/a", headers=cookies) as resp:
        assert resp.status == 200
    assert upstream.last().header("Cookie") == [cookies["Cookie"]]
    async with client.get(stripped.url + "/a", headers=cookies) as resp:
        assert resp.status == 200
    assert upstream.last().header("Cookie") == ["theme=dark; lang=en"]
    async with client.get(stripped.url + "/a", headers={"Cookie": f"access_token={token}"}) as resp:
        assert resp.status == 200
    assert upstream.last().header("Cookie") == []  # nothing left: no empty Cookie header either


@pytest.mark.parametrize("sub", ["alice\r\nX-Auth-Scopes: proxy:admin", "alice\nroot", "alice\x00"])
async def test_identity_claim_with_control_character_is_refused(
    sub: str,
    proxy: RunningProxy,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    async with client.get(
        proxy.url + "/me", headers={"Authorization": f"Bearer {token('proxy:use', sub=sub)}"}
    ) as r:
        assert r.status == 401
        assert (await r.json())["error"] == "invalid_token"
    assert upstream.requests == []
