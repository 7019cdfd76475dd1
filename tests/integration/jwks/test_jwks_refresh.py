"""JwksSource's refresh against a real JWKS server on 127.0.0.1 (tests.rigs.jwks): first load,
rotation, the unknown-kid rate limit, bad fetches keeping the last good keys, logging, and backoff while
the IdP is down.

Refreshes are driven deterministically: `refresh_for_unknown_kid` joins or starts a fetch and returns when it
is done, and an injected clock decides when its rate limit has passed. The background loop waits in real
time, so it stays idle in these tests unless a test gives it tiny intervals on purpose.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from authproxy.config.model import JwksUrl
from tests.rigs.jwks import (
    INTERVAL,
    JWKS_PATH,
    FakeClock,
    JwksServer,
    MakeSource,
    kids,
    loaded,
    refresh_now,
)


async def test_initial_load_exposes_keys_and_counters(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], clock: FakeClock
) -> None:
    server.serve(jwk_a)
    source = make_source(JwksUrl(server.jwks_url, line=1))
    assert (source.ready, source.entries, source.generation) == (False, (), 0)

    await source.start()
    assert await source.wait_ready(10)

    assert kids(source) == {"A"}
    assert all(entry.issuer is None for entry in source.entries)
    assert source.generation == 1
    assert (source.refreshes, source.fetch_failures, source.last_success) == (1, 0, clock.now)
    assert server.hits[JWKS_PATH] == 1


async def test_rotation_overlap_then_removal_replaces_entries(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    jwk_b: dict[str, Any],
    clock: FakeClock,
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))

    server.serve(jwk_a, jwk_b)
    assert await refresh_now(source, clock, "B")
    assert kids(source) == {"A", "B"}
    assert source.generation == 2

    server.serve(jwk_b)
    assert await refresh_now(source, clock, "C")
    assert kids(source) == {"B"}
    assert source.generation == 3


async def test_unchanged_key_set_keeps_generation(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], clock: FakeClock
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))

    assert not await refresh_now(source, clock, "unknown")
    assert (source.generation, source.refreshes, server.hits[JWKS_PATH]) == (1, 2, 2)


async def test_unknown_kid_flood_is_rate_limited(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    jwk_b: dict[str, Any],
    clock: FakeClock,
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))
    server.serve(jwk_a, jwk_b)

    # Within the interval of the initial fetch: no request at all.
    flood = [source.refresh_for_unknown_kid(secrets.token_hex(8)) for _ in range(200)]
    assert not any(await asyncio.gather(*flood))
    assert server.hits[JWKS_PATH] == 1

    # Past the interval: the 200 callers share exactly one fetch, and all see the change.
    clock.advance(INTERVAL + 1)
    flood = [source.refresh_for_unknown_kid(secrets.token_hex(8)) for _ in range(200)]
    assert all(await asyncio.gather(*flood))
    assert server.hits[JWKS_PATH] == 2
    assert not await source.refresh_for_unknown_kid("B-but-not-really")
    assert server.hits[JWKS_PATH] == 2


UNKNOWN_KID_INTERVAL = 10.0  # the default unknown_kid_refresh_interval


async def test_key_rotated_in_right_after_startup_is_fetched_at_once(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    jwk_b: dict[str, Any],
    clock: FakeClock,
) -> None:
    server.serve(jwk_a)
    source = make_source(JwksUrl(server.jwks_url, line=1))
    await source.start()
    assert await source.wait_ready(10)  # the scheduled startup fetch
    server.serve(jwk_a, jwk_b)

    # The IdP signs with B a moment later: its first token triggers a fetch, whatever the scheduled one did.
    assert await source.refresh_for_unknown_kid("B")
    assert kids(source) == {"A", "B"}
    assert server.hits[JWKS_PATH] == 2

    # Flood protection holds: random kids right after get no fetch at all ...
    flood = [source.refresh_for_unknown_kid(secrets.token_hex(8)) for _ in range(200)]
    assert not any(await asyncio.gather(*flood))
    assert server.hits[JWKS_PATH] == 2
    # ... and once the window has passed, 200 of them share exactly one.
    clock.advance(UNKNOWN_KID_INTERVAL)
    server.serve(jwk_b)
    flood = [source.refresh_for_unknown_kid(secrets.token_hex(8)) for _ in range(200)]
    assert all(await asyncio.gather(*flood))  # the set changed: A is gone
    assert server.hits[JWKS_PATH] == 3
    assert kids(source) == {"B"}


async def test_unknown_kid_budget_follows_the_configured_interval(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], clock: FakeClock
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1, unknown_kid_refresh_interval=45.0)))
    assert server.hits[JWKS_PATH] == 1
    clock.advance(44.0)
    assert not await source.refresh_for_unknown_kid("X")
    assert server.hits[JWKS_PATH] == 1
    clock.advance(1.0)
    assert not await source.refresh_for_unknown_kid("X")
    assert server.hits[JWKS_PATH] == 2


async def test_unknown_kid_already_loaded_reports_retryable(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    # A background refresh may have brought the kid in after the caller's lookup: a retry can succeed.
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))
    assert await source.refresh_for_unknown_kid("A")
    assert server.hits[JWKS_PATH] == 1


async def test_refresh_before_start_makes_no_request(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server.serve(jwk_a)
    source = make_source(JwksUrl(server.jwks_url, line=1))
    assert not await source.refresh_for_unknown_kid("A")
    assert server.hits[JWKS_PATH] == 0


def answering(status: int) -> Callable[[JwksServer], None]:
    def breakage(server: JwksServer) -> None:
        server.mode, server.status = "error", status

    return breakage


BAD_RESPONSES: dict[str, Callable[[JwksServer], None]] = {
    "http-500": answering(500),
    "http-503": answering(503),
    "http-404": answering(404),
    "garbage-json": lambda s: setattr(s, "mode", "garbage"),
    "oversized-body": lambda s: setattr(s, "mode", "huge"),
    "oversized-chunked-body": lambda s: setattr(s, "mode", "huge-chunked"),
    "hanging-idp": lambda s: setattr(s, "mode", "hang"),
    "empty-key-set": lambda s: s.serve(),
    "keys-not-a-list": lambda s: setattr(s, "document", {"keys": "A"}),
    "not-an-object": lambda s: setattr(s, "document", [{"kty": "RSA"}]),
    "malformed-key": lambda s: s.serve({"kty": "RSA", "kid": "X", "n": "!!", "e": "AQAB", "alg": "RS256"}),
    "only-unconfigured-alg": lambda s: s.serve({"kty": "oct", "kid": "H", "k": "c2VjcmV0", "alg": "HS256"}),
}


@pytest.mark.parametrize("breakage", BAD_RESPONSES.values(), ids=BAD_RESPONSES.keys())
async def test_bad_fetch_keeps_last_good_keys(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    clock: FakeClock,
    breakage: Callable[[JwksServer], None],
) -> None:
    server.serve(jwk_a)
    # Only the hanging IdP needs a short fetch timeout; the others keep a generous one.
    fetch_timeout = 1.0 if breakage is BAD_RESPONSES["hanging-idp"] else 10.0
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1), fetch_timeout=fetch_timeout))

    breakage(server)
    assert not await refresh_now(source, clock, "B")

    assert kids(source) == {"A"}
    assert source.ready and source.generation == 1
    assert (source.refreshes, source.fetch_failures) == (1, 1)
    assert source.last_error
    assert server.hits[JWKS_PATH] == 2


async def test_fetch_failure_is_logged_without_key_material(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], clock: FakeClock
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))
    server.mode = "garbage"
    with structlog.testing.capture_logs() as events:
        await refresh_now(source, clock)
    failures = [e for e in events if e["event"] == "jwks_fetch_failed"]
    assert len(failures) == 1
    assert failures[0]["url"] == server.jwks_url and failures[0]["keeping_keys"] == 1
    assert jwk_a["n"] not in repr(events)


async def test_credentials_in_key_url_stay_out_of_logs(server: JwksServer, make_source: MakeSource) -> None:
    server.mode = "error"
    url = server.jwks_url.replace("http://", "http://reader:pa55word@") + "?api_key=s3cret"
    source = make_source(JwksUrl(url, line=1))
    with structlog.testing.capture_logs() as events:
        await loaded(source)
    assert source.fetch_failures == 1
    assert source.url == server.jwks_url
    assert "pa55word" not in repr(events) and "s3cret" not in repr(events)
    assert "pa55word" not in (source.last_error or "") and "s3cret" not in (source.last_error or "")


async def test_idp_down_at_start_retries_with_backoff_until_ready(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server.mode = "error"
    source = make_source(JwksUrl(server.jwks_url, line=1), backoff_initial=0.01, backoff_max=0.02)
    await source.start()
    await server.wait_hits(JWKS_PATH, 3)
    assert not source.ready and source.fetch_failures >= 2

    server.serve(jwk_a)
    assert await source.wait_ready(10)
    assert kids(source) == {"A"}


async def test_wait_ready_gives_false_while_idp_is_down(server: JwksServer, make_source: MakeSource) -> None:
    server.mode = "error"
    source = make_source(JwksUrl(server.jwks_url, line=1))
    await source.start()
    assert not await source.wait_ready(0.05)
    assert source.entries == ()
