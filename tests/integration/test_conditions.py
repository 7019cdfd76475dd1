"""Conditions on rules (`when:`) end to end: a real proxy in front of the tapped upstream. Every refusal is
403 `condition_failed` with our body (no expression in it) and not a byte upstream; the access line names
the condition; explain, the proxied port and the decision port agree; a body condition forwards the proxy's
canonical re-encoding; a reload with a bad expression keeps the running policy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from yarl import URL

from authproxy.cli.explain import explanation
from authproxy.standards.json_text import write_json
from tests.rigs.authz import check_request
from tests.rigs.config import BASE_ROUTES
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.proxy import ProxyFactory, RunningProxy
from tests.rigs.tapped import TappedUpstream, serving_tapped

RULES = """\
    "GET /tenants/{tenant}/reports": {scopes: [reports:read], when: "claims.tenant == params.tenant"}
    "* /orders/**":
      scopes: [orders:use]
      when: "!('read-only' in claims.roles) || request.method == 'GET'"
    "POST /payments": {scopes: [payments:write], when: "body.amount <= 1000"}
"""
REFUSED = {"detail": "a condition of this rule is not met", "error": "condition_failed"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def tapped() -> AsyncIterator[TappedUpstream]:
    async with serving_tapped(TappedUpstream()) as up:
        yield up


@pytest.fixture
async def proxy(tapped: TappedUpstream, start_proxy: ProxyFactory) -> RunningProxy:
    return await start_proxy(tapped.url, routes=RULES + BASE_ROUTES, extra="authz_listen: 127.0.0.1:0\n")


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def tenant_line(proxy: RunningProxy) -> str:
    """Where the tenant rule's condition is written: `FILE:LINE`."""
    lines = Path(proxy.config_path).read_text().splitlines()
    return f"{proxy.config_path}:{next(i for i, t in enumerate(lines, 1) if 'params.tenant' in t)}"


def bearer(token: TokenFactory, *scopes: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes, sub='alice', **claims)}"}


async def call(
    client: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes]:
    async with client.request(method, url, headers=headers, data=body) as response:
        return response.status, await response.read()


async def refused(
    client: aiohttp.ClientSession,
    tapped: TappedUpstream,
    method: str,
    url: str,
    headers: dict[str, str],
    **kw: Any,
) -> None:
    status, body = await call(client, method, url, headers, **kw)
    assert (status, json.loads(body)) == (403, REFUSED)
    tapped.assert_nothing_forwarded()


async def test_the_tokens_tenant_is_the_paths_tenant(
    proxy: RunningProxy, tapped: TappedUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    url = proxy.url + "/tenants/acme/reports"
    await refused(client, tapped, "GET", url, bearer(token, "reports:read", tenant="globex"))
    await refused(client, tapped, "GET", url, bearer(token, "reports:read"))  # no tenant claim: an error
    await refused(client, tapped, "GET", url, bearer(token, "proxy:admin", tenant="globex"))  # admin too
    status, _ = await call(client, "GET", url, bearer(token, "reports:read", tenant="acme"))
    assert status == 200
    assert tapped.only().raw_path == "/tenants/acme/reports"


async def test_a_read_only_role_may_only_get(
    proxy: RunningProxy, tapped: TappedUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    reader = bearer(token, "orders:use", roles=["read-only"])
    await refused(client, tapped, "POST", proxy.url + "/orders/7/cancel", reader, body=b"{}")
    await refused(client, tapped, "DELETE", proxy.url + "/orders/7", reader)
    assert (await call(client, "GET", proxy.url + "/orders/7", reader))[0] == 200
    clerk = bearer(token, "orders:use", roles=["clerk"])
    assert (await call(client, "DELETE", proxy.url + "/orders/7", clerk))[0] == 200
    assert [(r.method, r.raw_path) for r in tapped.requests] == [
        ("GET", "/orders/7"),
        ("DELETE", "/orders/7"),
    ]


async def test_an_amount_in_the_body_stays_under_the_limit_and_the_upstream_gets_our_encoding(
    proxy: RunningProxy, tapped: TappedUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    payer = {**bearer(token, "payments:write"), **JSON}
    url = proxy.url + "/payments"
    await refused(client, tapped, "POST", url, payer, body=b'{"amount": 5000}')
    await refused(client, tapped, "POST", url, payer, body=b'{"amount": "5"}')  # a string: an error
    await refused(client, tapped, "POST", url, payer, body=b'{"note": "no amount"}')
    sent = b'{ "amount" : 250.50,\n  "note": "caf\\u00e9" }'
    assert (await call(client, "POST", url, payer, sent))[0] == 200
    received = tapped.only()
    assert received.body == write_json(
        json.loads(sent)
    )  # what was judged, re-encoded: not the client's bytes
    assert received.body != sent


async def test_a_malformed_body_is_a_400_before_the_condition(
    proxy: RunningProxy, tapped: TappedUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    payer = {**bearer(token, "payments:write"), **JSON}
    status, body = await call(client, "POST", proxy.url + "/payments", payer, b'{"amount": 1, "amount": 2}')
    assert (status, json.loads(body)["error"]) == (400, "bad_request")
    tapped.assert_nothing_forwarded()


async def test_the_access_line_names_the_failed_condition_and_the_answer_does_not(
    proxy: RunningProxy, tapped: TappedUpstream, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    with structlog.testing.capture_logs() as logs:
        status, body = await call(
            client, "GET", proxy.url + "/tenants/acme/reports", bearer(token, "reports:read", tenant="x")
        )
    assert status == 403
    assert b"claims" not in body
    [line] = [e for e in logs if e["event"] == "request"]
    assert line["error"] == "condition_failed"
    assert line["condition"] == f"claims.tenant == params.tenant ({tenant_line(proxy)})"
    assert line["condition_value"] == "false"


async def _decision_port(
    client: aiohttp.ClientSession, proxy: RunningProxy, method: str, target: str, headers: dict[str, str]
) -> tuple[int, bytes]:
    assert proxy.service.decisions is not None and proxy.service.decisions.address is not None
    host, port = proxy.service.decisions.address
    verb, url, sent = check_request("nginx", f"http://{host}:{port}", method, target, headers)
    async with client.request(verb, URL(url, encoded=True), headers=sent) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize(("tenant", "status"), [("globex", 403), ("acme", 200)])
async def test_a_claims_condition_is_decided_alike_by_explain_and_both_ports(
    tenant: str,
    status: int,
    proxy: RunningProxy,
    tapped: TappedUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    presented = token("reports:read", sub="alice", tenant=tenant)
    headers = {"Authorization": f"Bearer {presented}"}
    target = "/tenants/acme/reports"
    proxied = await call(client, "GET", proxy.url + target, headers)
    port = await _decision_port(client, proxy, "GET", target, headers)
    explained = await explanation(str(proxy.config_path), "GET", target, token=presented)
    document = explained.document()
    assert proxied[0] == port[0] == document["status"] == status
    condition = [c for c in document["checks"] if c["label"] == "condition"]
    expected = "true" if status == 200 else "false"
    assert condition == [
        {
            "label": "condition",
            "description": f"claims.tenant == params.tenant ({tenant_line(proxy)}) = {expected}",
            "result": "passed" if status == 200 else "refused",
        }
    ]
    assert document["port"] == "any"
    if status == 403:
        assert proxied[1] == port[1] == explained.body_bytes == write_json(REFUSED)


async def test_a_body_condition_is_served_by_the_proxied_port_only(
    proxy: RunningProxy, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    headers = {**bearer(token, "payments:write"), **JSON}
    status, body = await _decision_port(client, proxy, "POST", "/payments", headers)
    assert (status, json.loads(body)["error"]) == (403, "proxied_port_only")


async def test_dry_run_forwards_a_condition_refusal_and_logs_what_it_would_have_answered(
    tapped: TappedUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(tapped.url, routes=RULES + BASE_ROUTES, policy="  dry_run: true\n")
    with structlog.testing.capture_logs() as logs:
        status, _ = await call(
            client, "GET", proxy.url + "/tenants/acme/reports", bearer(token, "reports:read", tenant="x")
        )
    assert status == 200
    assert tapped.only().raw_path == "/tenants/acme/reports"
    [line] = [e for e in logs if e["event"] == "request"]
    assert line["would"] == {"status": "403", "error": "condition_failed"}
    assert line["condition"].startswith("claims.tenant == params.tenant (")


async def test_a_reload_with_a_bad_expression_keeps_the_running_policy(
    tapped: TappedUpstream, start_proxy: ProxyFactory, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await start_proxy(tapped.url, routes=RULES + BASE_ROUTES)
    path = Path(proxy.config_path)
    good = _read(path)
    url = proxy.url + "/tenants/acme/reports"
    acme = bearer(token, "reports:read", tenant="acme")
    with structlog.testing.capture_logs() as logs:
        _write(path, good.replace("claims.tenant == params.tenant", "claims.tenant == params.tenant + 1"))
        assert not await proxy.service.reloader.reload("test")
    [failure] = [e for e in logs if e["event"] == "config reload failed; the running policy stays"]
    assert any(
        p.startswith(tenant_line(proxy) + ": ") and "no matching overload" in p for p in failure["problems"]
    )
    assert (await call(client, "GET", url, acme))[0] == 200  # the old condition still judges
    _write(path, good.replace("claims.tenant == params.tenant", "claims.tenant == 'globex'"))
    assert await proxy.service.reloader.reload("test")
    assert (await call(client, "GET", url, acme))[0] == 403
    assert value(await scrape(client, proxy.admin_url), "authproxy_config_reloads_total") == 1
