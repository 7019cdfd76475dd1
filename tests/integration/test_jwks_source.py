"""JwksSource against a real JWKS / OIDC server on 127.0.0.1 (tests/integration/jwks_server.py).

Refreshes are driven deterministically: `refresh_for_unknown_kid` joins or starts a fetch and returns when it
is done, and an injected clock decides when its rate limit has passed. The background loop waits in real
time, so it stays idle in these tests unless a test gives it tiny intervals on purpose.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa
from jwks_server import (
    DISCOVERY_PATH,
    JWKS_PATH,
    REDIRECT_PATH,
    JwksServer,
    loopback_session,
    loopback_tls,
    rsa_jwk,
    running_jwks_server,
)

from authproxy.auth.jwks import JwksSource
from authproxy.auth.keys import KeyRing
from authproxy.auth.mint import mint_token
from authproxy.auth.verify import Verifier
from authproxy.config.model import JwksUrl, JwtConfig, OidcIssuer
from authproxy.errors import InvalidToken, KeyNotFound

RS256 = frozenset({"RS256"})
INTERVAL = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def key_a() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key_b() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwk_a(key_a: rsa.RSAPrivateKey) -> dict[str, Any]:
    return rsa_jwk(key_a, "A")


@pytest.fixture
def jwk_b(key_b: rsa.RSAPrivateKey) -> dict[str, Any]:
    return rsa_jwk(key_b, "B")


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    async with running_jwks_server() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeSource = Callable[..., JwksSource]


@pytest.fixture
async def make_source(clock: FakeClock) -> AsyncIterator[MakeSource]:
    """Builds sources with test-friendly defaults; every one is closed at teardown."""
    made: list[JwksSource] = []

    def make(config: JwksUrl | OidcIssuer, **options: Any) -> JwksSource:
        options.setdefault("clock", clock)
        options.setdefault("min_refresh_interval", INTERVAL)
        options.setdefault("backoff_initial", 60.0)  # background retries stay out of request counts
        source = JwksSource(config, RS256, **options)
        made.append(source)
        return source

    yield make
    for source in made:
        await source.close()


async def loaded(source: JwksSource) -> JwksSource:
    """Start and complete the first fetch (joined, not waited for)."""
    await source.start()
    await source.refresh_for_unknown_kid(None)
    return source


async def refresh_now(source: JwksSource, clock: FakeClock, kid: str | None = None) -> bool:
    clock.advance(INTERVAL + 1)
    return await source.refresh_for_unknown_kid(kid)


def kids(source: JwksSource) -> set[str | None]:
    return {entry.kid for entry in source.entries}


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


async def test_oidc_discovery_loads_keys_pinned_to_issuer(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(OidcIssuer(server.issuer, line=1)))

    assert source.ready and kids(source) == {"A"}
    assert {entry.issuer for entry in source.entries} == {server.issuer}
    assert (server.hits[DISCOVERY_PATH], server.hits[JWKS_PATH]) == (1, 1)


DISCOVERY_ATTACKS: dict[str, Callable[[JwksServer], dict[str, Any]]] = {
    "issuer-mismatch": lambda s: {"issuer": "https://evil.example.com", "jwks_uri": s.jwks_url},
    "issuer-missing": lambda s: {"jwks_uri": s.jwks_url},
    "jwks-uri-missing": lambda s: {"issuer": s.issuer},
    "jwks-uri-not-a-string": lambda s: {"issuer": s.issuer, "jwks_uri": [s.jwks_url]},
    "jwks-uri-plain-http-remote": lambda s: {"issuer": s.issuer, "jwks_uri": s.remote_url(JWKS_PATH)},
    "jwks-uri-file-scheme": lambda s: {"issuer": s.issuer, "jwks_uri": "file:///etc/passwd"},
}


@pytest.mark.parametrize("document", DISCOVERY_ATTACKS.values(), ids=DISCOVERY_ATTACKS.keys())
async def test_bad_discovery_document_is_refused(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    document: Callable[[JwksServer], dict[str, Any]],
) -> None:
    server.serve(jwk_a)
    server.discovery = document(server)
    source = await loaded(make_source(OidcIssuer(server.issuer, line=1), session_factory=loopback_session))

    assert not source.ready and source.entries == ()
    assert source.fetch_failures == 1
    assert server.hits[JWKS_PATH] == 0


@pytest.mark.parametrize(
    "config",
    [
        JwksUrl("http://idp.example.com/jwks.json", line=1),
        JwksUrl("http://10.0.0.8/jwks.json", line=1),
        JwksUrl("http://localhost.example.com/jwks.json", line=1),
        JwksUrl("ftp://127.0.0.1/jwks.json", line=1),
        OidcIssuer("http://idp.example.com", line=1),
    ],
    ids=lambda c: getattr(c, "url", None) or c.issuer,
)
def test_plain_http_to_remote_host_is_refused(config: JwksUrl | OidcIssuer) -> None:
    with pytest.raises(ValueError, match="must use https"):
        JwksSource(config, RS256)


@pytest.mark.parametrize("url", ["/jwks.json", "https:///jwks.json", "idp.example.com/jwks.json"])
def test_key_url_without_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an absolute URL"):
        JwksSource(JwksUrl(url, line=1), RS256)


@pytest.mark.parametrize(
    "config",
    [
        JwksUrl("https://idp.example.com/jwks.json", line=1),
        JwksUrl("http://127.0.0.2:8080/jwks.json", line=1),
        JwksUrl("http://[::1]/jwks.json", line=1),
        JwksUrl("http://localhost/jwks.json", line=1),
        JwksUrl("http://idp.internal/jwks.json", line=1, allow_insecure_http=True),
        OidcIssuer("https://idp.example.com/realms/main", line=1),
    ],
    ids=lambda c: getattr(c, "url", None) or c.issuer,
)
def test_https_loopback_or_opted_in_http_is_accepted(config: JwksUrl | OidcIssuer) -> None:
    source = JwksSource(config, RS256)
    first = config.url if isinstance(config, JwksUrl) else config.issuer + "/.well-known/openid-configuration"
    assert source.url == first
    assert not source.ready
    assert source.entries == ()


def test_oidc_discovery_url_follows_issuer_path() -> None:
    source = JwksSource(OidcIssuer("https://idp.example.com/realms/main/", line=1), RS256)
    assert source.url == "https://idp.example.com/realms/main/.well-known/openid-configuration"


async def test_redirect_within_rules_is_followed(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server.serve(jwk_a)
    server.redirect_location = JWKS_PATH
    source = await loaded(make_source(JwksUrl(server.base_url + REDIRECT_PATH, line=1)))
    assert kids(source) == {"A"}


@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_redirect_to_refused_scheme_is_refused(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], scheme: str
) -> None:
    server.serve(jwk_a)
    server.redirect_location = server.remote_url(JWKS_PATH, scheme)
    config = JwksUrl(server.base_url + REDIRECT_PATH, line=1)
    source = await loaded(make_source(config, session_factory=loopback_session))
    assert not source.ready and source.fetch_failures == 1
    assert server.hits[JWKS_PATH] == 0


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[JwksServer, ssl.SSLContext]]:
    server_context, client_context = loopback_tls(tmp_path)
    async with running_jwks_server(tls=server_context) as running:
        yield running, client_context


def trusting(client_context: ssl.SSLContext) -> Callable[[], aiohttp.ClientSession]:
    return lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context))


async def test_https_source_loads_through_given_session(
    tls_server: tuple[JwksServer, ssl.SSLContext], make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server, client_context = tls_server
    server.serve(jwk_a)
    source = await loaded(
        make_source(OidcIssuer(server.issuer, line=1), session_factory=trusting(client_context))
    )
    assert server.issuer.startswith("https://")
    assert kids(source) == {"A"}


async def test_redirect_from_https_to_http_is_refused(
    tls_server: tuple[JwksServer, ssl.SSLContext], make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    # Loopback http would pass on its own; a downgrade from https never does.
    server, client_context = tls_server
    server.serve(jwk_a)
    server.redirect_location = server.jwks_url.replace("https://", "http://")
    config = JwksUrl(server.base_url + REDIRECT_PATH, line=1)
    source = await loaded(make_source(config, session_factory=trusting(client_context)))
    assert not source.ready and source.fetch_failures == 1
    assert "https to http" in (source.last_error or "")
    assert server.hits[JWKS_PATH] == 0


async def test_redirect_loop_is_refused(server: JwksServer, make_source: MakeSource) -> None:
    server.redirect_location = REDIRECT_PATH
    source = await loaded(make_source(JwksUrl(server.base_url + REDIRECT_PATH, line=1)))
    assert not source.ready and source.fetch_failures == 1
    assert server.hits[REDIRECT_PATH] == 4


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        ("public, max-age=600", 600.0),
        (None, 300.0),  # the configured refresh_interval
        ("max-age=5", INTERVAL),  # floor
        ("no-store", INTERVAL),
        ("max-age=9999999", 24 * 3600.0),  # ceiling
        ("max-age=soon", 300.0),
    ],
)
async def test_cache_control_max_age_sets_next_refresh(
    server: JwksServer,
    make_source: MakeSource,
    jwk_a: dict[str, Any],
    cache_control: str | None,
    expected: float,
) -> None:
    server.serve(jwk_a)
    server.cache_control = cache_control
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1, refresh_interval=300.0)))
    assert source.next_refresh_delay == expected


async def test_max_age_drives_background_refresh(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any], jwk_b: dict[str, Any]
) -> None:
    # refresh_interval says 5 minutes, the IdP says "do not cache": the tiny floor governs, so the
    # background loop refetches on its own and picks up the rotation.
    server.serve(jwk_a)
    server.cache_control = "max-age=0"
    source = make_source(JwksUrl(server.jwks_url, line=1, refresh_interval=300.0), min_refresh_interval=0.01)
    await source.start()
    assert await source.wait_ready(10)
    server.serve(jwk_b)
    await server.wait_hits(JWKS_PATH, server.hits[JWKS_PATH] + 1)  # a fetch answered with B
    await source.refresh_for_unknown_kid(None)  # joins that fetch if it is still in flight
    assert kids(source) == {"B"}
    assert source.fetch_failures == 0


async def test_close_stops_fetching(
    server: JwksServer, make_source: MakeSource, jwk_a: dict[str, Any]
) -> None:
    server.serve(jwk_a)
    source = await loaded(make_source(JwksUrl(server.jwks_url, line=1)))
    await source.close()
    assert not await source.refresh_for_unknown_kid("B")
    assert server.hits[JWKS_PATH] == 1
    assert kids(source) == {"A"}


async def test_token_signed_by_rotated_in_key_verifies_after_refresh(
    server: JwksServer,
    make_source: MakeSource,
    key_a: rsa.RSAPrivateKey,
    key_b: rsa.RSAPrivateKey,
    jwk_a: dict[str, Any],
    jwk_b: dict[str, Any],
    clock: FakeClock,
) -> None:
    config = JwksUrl(server.jwks_url, line=1)
    server.serve(jwk_a)
    source = await loaded(make_source(config))
    jwt_config = JwtConfig(algorithms=("RS256",), keys=(config,))
    verifier = Verifier(jwt_config, KeyRing((), [source]))
    token_a = mint_token({"sub": "alice"}, alg="RS256", key=key_a, kid="A")
    token_b = mint_token({"sub": "bob"}, alg="RS256", key=key_b, kid="B")
    assert verifier.verify(token_a).claims["sub"] == "alice"
    with pytest.raises(KeyNotFound):
        verifier.verify(token_b)

    # The IdP rotates: the gate's unknown-kid path refreshes and retries.
    server.serve(jwk_a, jwk_b)
    clock.advance(INTERVAL + 1)
    assert await source.refresh_for_unknown_kid("B")
    assert verifier.verify(token_b).claims["sub"] == "bob"

    # Key A is withdrawn: tokens it signed stop verifying, cached or not.
    server.serve(jwk_b)
    assert await refresh_now(source, clock)
    with pytest.raises(InvalidToken):
        verifier.verify(token_a)
    assert verifier.verify(token_b).claims["sub"] == "bob"
