"""Dry run, shadow policy and upstream divergence on the proxied port, through a real proxy in front of the
tapped upstream: what would have been refused is forwarded as the client sent it, logged and counted; the
shadow policy's differences are logged and counted, never answered; an upstream that disagrees is seen."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.tapped import TappedUpstream, serving_tapped

ROUTES = """\
    "* /**": [proxy:use]
    "GET /private/**": [private:read]
    "POST /items": {scopes: [items:write], pin: {json:/owner: user_id}, max_body: 64}
"""
DRY_RUN = "  dry_run: true\n"
PRIVATE = "GET /private/**"


class RefusingUpstream(TappedUpstream):
    """The echo, except that /refused/** is answered 403, as an upstream with its own RBAC would."""

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        if request.path.startswith("/refused/"):
            return web.json_response({"detail": "Insufficient permissions"}, status=403)
        return None


@pytest.fixture
async def tapped() -> AsyncIterator[RefusingUpstream]:
    async with serving_tapped(RefusingUpstream()) as up:
        yield up


def lines(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


async def get(client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> int:
    async with client.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_a_request_without_a_token_is_forwarded_logged_and_counted(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES, policy=DRY_RUN)
    spoof = {"X-Auth-User-Id": "admin"}
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/private/doc", spoof) == 200  # the upstream's answer
    seen = tapped.only()
    assert seen.header("X-Auth-User-Id") == []  # identity headers come from a verified token only
    [line] = lines(logs, "request")
    assert (line["decision"], line["status"], line["dry_run"]) == ("deny", 200, True)
    assert line["would"] == {"status": "401", "error": "missing_token"}
    [divergence] = lines(logs, "divergence")
    assert (divergence["ours"], divergence["upstream"], divergence["route"]) == ("401", "200", PRIVATE)
    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_dry_run_refusals_total", route=PRIVATE, error="missing_token") == 1
    assert value(samples, "authproxy_upstream_divergence_total", route=PRIVATE, ours="401") == 1
    assert value(samples, "authproxy_denials_total") == 0  # nothing was answered as a denial


async def test_a_verified_token_short_of_scopes_passes_with_its_identity(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES, policy=DRY_RUN)
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/refused/x", bearer) == 403  # we allow, the upstream refuses
        assert await get(client, proxy.url + "/private/doc", bearer) == 200
    assert [r.header("X-Auth-User-Id") for r in tapped.requests] == [["alice"], ["alice"]]
    wrote = [line.get("would") for line in lines(logs, "request")]
    assert wrote == [None, {"status": "403", "error": "insufficient_scope"}]
    seen = [(d["path"], d["ours"], d["upstream"], d["subject"]) for d in lines(logs, "divergence")]
    assert seen == [("/refused/x", "allow", "403", "alice"), ("/private/doc", "403", "200", "alice")]


async def test_an_unverifiable_token_reaches_the_upstream_unchanged(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES, policy=DRY_RUN, strip_authorization="true")
    assert await get(client, proxy.url + "/private/doc", {"Authorization": "Bearer not.a.jwt"}) == 200
    seen = tapped.only()
    assert seen.header("Authorization") == ["Bearer not.a.jwt"]  # the upstream's own checks decide
    assert seen.header("X-Auth-User-Id") == []


async def test_a_body_a_check_refuses_goes_as_the_client_sent_it(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES, policy=DRY_RUN)
    bearer = {
        "Authorization": f"Bearer {token('items:write', sub='alice')}",
        "Content-Type": "application/json",
    }
    bodies = [b'{"owner": ', b'{"owner": "bob"}', b"{}"]
    with structlog.testing.capture_logs() as logs:
        for body in bodies:
            async with client.post(proxy.url + "/items", data=body, headers=bearer) as resp:
                assert resp.status == 200
    assert [r.body for r in tapped.requests] == bodies  # never rewritten: a pin does not fill a field either
    wrote = [line.get("would") for line in lines(logs, "request")]
    assert wrote == [
        {"status": "400", "error": "bad_request"},
        {"status": "403", "error": "forbidden"},
        None,
    ]


async def test_an_allowed_request_the_upstream_refuses_is_a_divergence(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES)  # enforcing: divergence is seen all the same
    bearer = {"Authorization": f"Bearer {token('proxy:use', sub='alice')}"}
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/refused/x", bearer) == 403
        assert await get(client, proxy.url + "/fine/x", bearer) == 200
    [divergence] = lines(logs, "divergence")
    assert (divergence["path"], divergence["ours"], divergence["upstream"]) == ("/refused/x", "allow", "403")
    samples = await scrape(client, proxy.admin_url)
    labels = {"route": "* /**", "ours": "allow", "upstream": "403"}
    assert value(samples, "authproxy_upstream_divergence_total", **labels) == 1


async def test_without_dry_run_the_same_refusal_is_answered_and_nothing_forwarded(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(tapped.url, routes=ROUTES)
    async with client.get(proxy.url + "/private/doc") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "missing_token"
    tapped.assert_nothing_forwarded()


async def test_readyz_says_dry_run_and_names_the_shadow(
    tapped: RefusingUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    (tmp_path / "next.yaml").write_text('routes:\n  "* /**": [proxy:use]\n')
    proxy = await start_proxy(tapped.url, routes=ROUTES, policy=DRY_RUN + "  shadow: next.yaml\n")
    async with client.get(proxy.admin_url + "/readyz") as resp:
        assert resp.status == 200
        assert await resp.json() == {
            "status": "ready",
            "dry_run": True,
            "shadow": str(tmp_path / "next.yaml"),
        }


# --- shadow policy ---------------------------------------------------------------------------------------

SHADOW = 'routes:\n  "* /**": [proxy:use]\n  "GET /private/**": [private:read, private:audit]\n'


async def shadowed(start_proxy: ProxyFactory, upstream_url: str, tmp_path: Path) -> RunningProxy:
    (tmp_path / "next.yaml").write_text(SHADOW)
    return await start_proxy(upstream_url, routes=ROUTES, policy="  shadow: next.yaml\n")


async def test_the_shadow_logs_and_counts_where_it_differs_and_never_answers(
    tapped: RefusingUpstream,
    start_proxy: ProxyFactory,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    tmp_path: Path,
) -> None:
    proxy = await shadowed(start_proxy, tapped.url, tmp_path)
    reader = {"Authorization": f"Bearer {token('proxy:use', 'private:read', sub='alice')}"}
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/private/doc", reader) == 200  # the enforced policy answers
        assert await get(client, proxy.url + "/fine/x", reader) == 200  # both agree: no shadow line
        assert await get(client, proxy.url + "/private/doc") == 401  # both refuse alike
    [shadow] = lines(logs, "shadow")
    assert {k: shadow[k] for k in ("path", "route", "subject", "enforced", "shadow", "shadow_error")} == {
        "path": "/private/doc",
        "route": PRIVATE,
        "subject": "alice",
        "enforced": "allow",
        "shadow": "403",
        "shadow_error": "insufficient_scope",
    }
    samples = await scrape(client, proxy.admin_url)
    labels = {"route": PRIVATE, "enforced": "allow", "shadow": "403"}
    assert value(samples, "authproxy_shadow_divergence_total", **labels) == 1
    assert value(samples, "authproxy_shadow_divergence_total") == 1


async def test_a_broken_shadow_file_is_refused_on_reload_and_the_old_one_kept(
    tapped: RefusingUpstream,
    start_proxy: ProxyFactory,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    tmp_path: Path,
) -> None:
    proxy = await shadowed(start_proxy, tapped.url, tmp_path)
    (tmp_path / "next.yaml").write_text('routes:\n  "GIT /x": []\n')
    assert not await proxy.service.reloader.reload("test")
    reader = {"Authorization": f"Bearer {token('proxy:use', 'private:read', sub='alice')}"}
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/private/doc", reader) == 200
    assert [line["shadow"] for line in lines(logs, "shadow")] == ["403"]  # the old shadow still decides
    (tmp_path / "next.yaml").write_text('routes:\n  "GET /private/**": []\n')
    assert await proxy.service.reloader.reload("test")
    with structlog.testing.capture_logs() as logs:
        assert await get(client, proxy.url + "/private/doc", reader) == 200
    assert lines(logs, "shadow") == []
