"""Rate limits end to end: a real proxy, a real upstream, and a real redis-server shared by two
`authproxy serve` processes. Every refusal is checked for status, body, headers and that nothing reached
the upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import Launch, proxies
from tests.rigs.redis_server import RedisServer, redis_server_binary
from tests.rigs.serve import ServeFactory
from tests.rigs.upstream import RecordingUpstream, serving

ROUTE = "* /**"  # the rig's catch-all rule (scope proxy:use)


@dataclass
class LimitRig:
    """The recording upstream, a client, tokens, and config files with limits on the rig's policy."""

    upstream: RecordingUpstream
    client: aiohttp.ClientSession
    token: TokenFactory
    folder: Path
    secret: bytes

    def config(self, backend: str = "memory", on_error: str = "deny", default: str = "100/min") -> Path:
        # 3 per hour: no token comes back while a test runs, so every count below is exact.
        path = self.folder / "limits.yaml"
        path.write_text(
            config_text(self.upstream.url, self.secret)
            + "rate_limits:\n"
            + f"  backend: {backend}\n"
            + f"  redis: {{timeout: 2s, on_error: {on_error}}}\n"
            + f"  default: {default}\n"
            + "  routes:\n"
            + f'    "{ROUTE}": {{rate: 3/hour, burst: 3}}\n'
        )
        return path

    def caller(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token('proxy:use', sub=sub)}"}

    async def status(self, url: str, sub: str = "alice") -> int:
        return await status_of(self.client, url, self.caller(sub))

    def paths(self) -> list[str]:
        return [r.raw_path for r in self.upstream.requests]


@pytest.fixture
def rig(
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
    tmp_path: Path,
    hs_secret: bytes,
) -> LimitRig:
    return LimitRig(upstream, client, token, tmp_path, hs_secret)


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    async with proxies() as start:
        yield start


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(redis_server_binary(), tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def assert_rate_limited(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    """One request over the limit: the whole 429, as a client sees it."""
    async with client.post(url, headers=headers, data=b"x" * 4096) as resp:
        body = await resp.read()
        assert resp.status == 429
        assert resp.headers["Content-Type"] == "application/json"
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 1200  # one token in 20 minutes at 3/hour
        assert resp.headers["RateLimit-Policy"] == f'"default";q=100;w=60, "{ROUTE}";q=3;w=3600'
        assert resp.headers["RateLimit"] == f'"{ROUTE}";r=0;t={retry}'
        assert "WWW-Authenticate" not in resp.headers
    assert json.loads(body) == {
        "detail": f"rate limit {ROUTE} (3/hour burst 3) exceeded",
        "error": "rate_limited",
        "limit": ROUTE,
        "retry_after": retry,
    }


async def test_in_process_limit_refuses_the_fourth_request_and_nothing_reaches_the_upstream(
    launch: Launch, rig: LimitRig
) -> None:
    proxy = await launch(rig.config())
    for i in range(3):
        assert await rig.status(f"{proxy.url}/items/{i}") == 200
    await assert_rate_limited(rig.client, proxy.url + "/items/over", rig.caller("alice"))
    assert rig.paths() == ["/items/0", "/items/1", "/items/2"]
    assert rig.upstream.arrived.qsize() == 3  # not even a request head went out
    # Budgets are per caller; public routes carry no caller and are not limited.
    assert await rig.status(proxy.url + "/items/bob", "bob") == 200
    for _ in range(5):
        assert await status_of(rig.client, proxy.url + "/public/p") == 200

    samples = await scrape(rig.client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limited_total", limit=ROUTE) == 1
    assert value(samples, "authproxy_denials_total", error="rate_limited") == 1
    assert value(samples, "authproxy_requests_total", decision="deny", status="429", route=ROUTE) == 1
    assert value(samples, "authproxy_rate_limit_backend_errors_total") == 0


async def test_two_serve_processes_share_one_redis_budget(
    serve: ServeFactory, redis_server: RedisServer, rig: LimitRig
) -> None:
    config = rig.config(backend=redis_server.url)
    first, second = await serve(config), await serve(config)
    assert await rig.status(first.url + "/a") == 200
    assert await rig.status(second.url + "/b") == 200
    assert await rig.status(first.url + "/c") == 200
    await assert_rate_limited(rig.client, second.url + "/d", rig.caller("alice"))
    await assert_rate_limited(rig.client, first.url + "/e", rig.caller("alice"))
    assert rig.paths() == ["/a", "/b", "/c"]
    assert await rig.status(second.url + "/f", "bob") == 200

    def refused_line() -> dict[str, object] | None:
        return next((ln for ln in second.log.lines if ln.get("status") == 429), None)

    async def logged() -> bool:
        return refused_line() is not None

    await poll(logged)
    line = refused_line()
    assert line is not None
    assert (line["decision"], line["error"], line["rate_limit"], line["subject"]) == (
        "deny",
        "rate_limited",
        ROUTE,
        "alice",
    )
    assert 0 < float(str(line["retry_after_s"])) <= 1200


async def test_redis_down_fails_closed_with_503_and_a_restart_is_survived(
    launch: Launch, redis_server: RedisServer, rig: LimitRig
) -> None:
    proxy = await launch(rig.config(backend=redis_server.url))
    assert await rig.status(proxy.url + "/before") == 200

    await redis_server.stop()
    async with rig.client.post(proxy.url + "/down", headers=rig.caller("alice"), data=b"y" * 4096) as resp:
        body = await resp.read()
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["Content-Type"] == "application/json"
        assert "RateLimit" not in resp.headers  # the caller is not over a limit: the store failed
    assert json.loads(body) == {
        "detail": "rate limit store unavailable",
        "error": "rate_limit_unavailable",
        "retry_after": 1,
    }
    assert rig.paths() == ["/before"]

    await redis_server.start()  # empty again (no persistence): the budget starts full
    for path in ("/after-1", "/after-2", "/after-3"):
        assert await rig.status(proxy.url + path) == 200
    await assert_rate_limited(rig.client, proxy.url + "/after-4", rig.caller("alice"))
    assert len(rig.upstream.requests) == 4

    samples = await scrape(rig.client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limit_backend_errors_total", request="denied") == 1
    assert value(samples, "authproxy_denials_total", error="rate_limit_unavailable") == 1
    assert value(samples, "authproxy_rate_limited_total", limit=ROUTE) == 1


async def test_redis_down_fails_open_when_configured(
    launch: Launch, redis_server: RedisServer, rig: LimitRig
) -> None:
    proxy = await launch(rig.config(backend=redis_server.url, on_error="allow"))
    await redis_server.stop()
    for i in range(5):  # more than the budget: nothing counts while the store is down
        assert await rig.status(f"{proxy.url}/open-{i}") == 200
    assert len(rig.upstream.requests) == 5
    assert rig.upstream.last().header("X-Auth-User-Id") == ["alice"]
    samples = await scrape(rig.client, proxy.admin_url)
    assert value(samples, "authproxy_rate_limit_backend_errors_total", request="allowed") == 5
    assert value(samples, "authproxy_denials_total") == 0


async def test_a_reload_keeps_the_running_budget(launch: Launch, rig: LimitRig) -> None:
    proxy = await launch(rig.config())
    for path in ("/r1", "/r2"):
        assert await rig.status(proxy.url + path) == 200
    store = proxy.service.holder.current.limits.store
    rig.config(default="200/min")
    assert await proxy.service.reloader.reload("test")
    limits = proxy.service.holder.current.limits
    assert limits.store is store  # same backend: the buckets carry over
    assert limits.config is not None and limits.config.default is not None
    assert limits.config.default.count == 200
    assert await rig.status(proxy.url + "/r3") == 200
    async with rig.client.get(proxy.url + "/r4", headers=rig.caller("alice")) as resp:
        assert resp.status == 429
        assert resp.headers["RateLimit-Policy"] == f'"default";q=200;w=60, "{ROUTE}";q=3;w=3600'
        assert json.loads(await resp.read())["error"] == "rate_limited"
    assert rig.paths() == ["/r1", "/r2", "/r3"]


# --- RateLimit fields on allowed answers -----------------------------------------------------------------


async def test_allowed_answers_carry_the_ratelimit_fields_and_the_remaining_falls(
    launch: Launch, rig: LimitRig
) -> None:
    proxy = await launch(rig.config())
    policy = f'"default";q=100;w=60, "{ROUTE}";q=3;w=3600'
    left = []
    for i in range(3):
        async with rig.client.get(f"{proxy.url}/items/{i}", headers=rig.caller("alice")) as resp:
            await resp.read()
            assert resp.status == 200
            assert resp.headers.getall("RateLimit-Policy") == [policy]
            (fields,) = resp.headers.getall("RateLimit")
            default, route = fields.split(", ")
            assert route == f'"{ROUTE}";r={2 - i};t={1200 * (i + 1)}'  # a token back every 20 minutes
            assert default.startswith('"default";r=')
            left.append(int(default.split(";")[1].removeprefix("r=")))
    assert left[0] > left[1] > left[2]  # 100/min gives back a token in 0.6 s: the tests are quicker
    await assert_rate_limited(rig.client, proxy.url + "/items/over", rig.caller("alice"))
    assert rig.upstream.arrived.qsize() == 3
    # public routes are not limited (no client_ip key): no fields
    async with rig.client.get(proxy.url + "/public/p") as resp:
        assert resp.status == 200
        assert "RateLimit" not in resp.headers and "RateLimit-Policy" not in resp.headers


@pytest.fixture
async def echoing_upstream() -> AsyncIterator[str]:
    """An upstream that sends RateLimit fields of its own (in two spellings) on a streamed answer."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(
            headers=CIMultiDict(
                [
                    ("RateLimit", '"upstream";r=999;t=1'),
                    ("ratelimit-policy", '"upstream";q=1000;w=1'),
                    ("Content-Type", "text/plain"),
                ]
            )
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"streamed ")
        await resp.write_eof(b"answer")
        return resp

    async with serving(web.Server(handle)) as url:
        yield url


async def test_ours_replace_the_upstreams_on_a_limited_route_and_theirs_pass_elsewhere(
    launch: Launch, rig: LimitRig, echoing_upstream: str
) -> None:
    config = rig.folder / "echo.yaml"
    config.write_text(
        config_text(echoing_upstream, rig.secret)
        + 'rate_limits:\n  routes:\n    "GET /private/**": {rate: 2/hour, burst: 2}\n'
    )
    proxy = await launch(config)
    reader = {"Authorization": f"Bearer {rig.token('private:read', 'proxy:use', sub='alice')}"}
    async with rig.client.get(proxy.url + "/private/a", headers=reader) as resp:
        assert await resp.read() == b"streamed answer"
        assert resp.headers.getall("RateLimit") == ['"GET /private/**";r=1;t=1800']
        assert resp.headers.getall("RateLimit-Policy") == ['"GET /private/**";q=2;w=3600']
    # a route no limit names: the upstream's own fields pass untouched, and none of ours are added
    async with rig.client.get(proxy.url + "/items/a", headers=reader) as resp:
        assert await resp.read() == b"streamed answer"
        assert resp.headers.getall("RateLimit") == ['"upstream";r=999;t=1']
        assert resp.headers.getall("RateLimit-Policy") == ['"upstream";q=1000;w=1']


# --- key: client_ip ----------------------------------------------------------------------------------


@asynccontextmanager
async def client_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections leave from `address` (any 127.0.0.0/8 address is this machine's)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def client_ip_config(rig: LimitRig, trusted: str) -> Path:
    path = rig.folder / "client-ip.yaml"
    path.write_text(
        config_text(rig.upstream.url, rig.secret)
        + "rate_limits:\n"
        + "  key: client_ip\n"
        + f"  trusted_proxies: [{trusted}]\n"
        + '  routes:\n    "/public/**": {rate: 2/hour, burst: 2}\n'
    )
    return path


async def assert_public_refused(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    async with client.get(url, headers=headers) as resp:
        body = json.loads(await resp.read())
        assert resp.status == 429
        assert resp.headers["RateLimit"].startswith('"/public/**";r=0;t=')
    assert body["error"] == "rate_limited"
    assert body["limit"] == "/public/**"


async def public_get(client: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    """The RateLimit field of an allowed public answer."""
    async with client.get(url, headers=headers) as resp:
        await resp.read()
        assert resp.status == 200
        return resp.headers["RateLimit"]


async def test_public_routes_are_limited_per_client_address_and_spoofed_forwarded_for_changes_nothing(
    launch: Launch, rig: LimitRig
) -> None:
    # 127.0.0.1 and 127.0.0.2 are two clients; neither is a trusted proxy.
    proxy = await launch(client_ip_config(rig, "10.0.0.0/8"))
    url = proxy.url + "/public/p"
    async with client_from("127.0.0.1") as one, client_from("127.0.0.2") as two:
        spoof = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(3)]
        assert await public_get(one, url, spoof[0]) == '"/public/**";r=1;t=1800'
        assert await public_get(one, url, spoof[1]) == '"/public/**";r=0;t=3600'
        await assert_public_refused(one, url, spoof[2])  # a new X-Forwarded-For is not a new client
        assert await public_get(two, url, {}) == '"/public/**";r=1;t=1800'  # its own budget
        assert await public_get(two, url, spoof[0]) == '"/public/**";r=0;t=3600'
        await assert_public_refused(two, url, {})
    assert len(rig.upstream.requests) == 4
    assert rig.upstream.arrived.qsize() == 4  # the refused ones never reached it


async def test_behind_a_trusted_proxy_the_right_most_untrusted_forwarded_address_is_the_client(
    launch: Launch, rig: LimitRig
) -> None:
    proxy = await launch(client_ip_config(rig, "127.0.0.1/32"))  # 127.0.0.1 is a load balancer
    url = proxy.url + "/public/p"
    async with client_from("127.0.0.1") as balancer, client_from("127.0.0.2") as direct:
        alice = {"X-Forwarded-For": "198.51.100.1"}
        # the left-most entry is whatever alice's client wrote: only the right-most untrusted one counts
        alice_spoofing = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
        assert await public_get(balancer, url, alice) == '"/public/**";r=1;t=1800'
        assert await public_get(balancer, url, alice_spoofing) == '"/public/**";r=0;t=3600'
        await assert_public_refused(balancer, url, {"X-Forwarded-For": "198.51.100.1, 127.0.0.1"})
        # another client behind the same balancer has its own budget
        assert (
            await public_get(balancer, url, {"X-Forwarded-For": "198.51.100.2"}) == '"/public/**";r=1;t=1800'
        )
        # a peer that is not trusted cannot borrow a budget by naming its owner
        assert await public_get(direct, url, {"X-Forwarded-For": "198.51.100.2"}) == '"/public/**";r=1;t=1800'
        assert await public_get(direct, url, alice) == '"/public/**";r=0;t=3600'
        await assert_public_refused(direct, url, {"X-Forwarded-For": "198.51.100.3"})
    assert len(rig.upstream.requests) == 5
    assert rig.upstream.arrived.qsize() == 5
