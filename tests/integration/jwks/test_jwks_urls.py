"""JwksSource's URLs against a real JWKS / OIDC server on 127.0.0.1 (tests.rigs.jwks): discovery pinned
to the issuer, the https rule for key URLs (shared with the config loader), redirects, TLS, Cache-Control,
closing, and a token verified with a key rotated in.

Fetches are driven as in test_jwks_refresh.py: joined, with an injected clock.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authproxy.auth.jwks import JwksSource
from authproxy.auth.keys import KeyRing
from authproxy.auth.mint import mint_token
from authproxy.auth.verify import Verifier
from authproxy.config.model import JwksUrl, JwtConfig, OidcIssuer
from authproxy.errors import InvalidToken, KeyNotFound
from tests.rigs.jwks import (
    DISCOVERY_PATH,
    INTERVAL,
    JWKS_PATH,
    REDIRECT_PATH,
    RS256,
    FakeClock,
    JwksServer,
    MakeSource,
    kids,
    loaded,
    loopback_session,
    loopback_tls,
    refresh_now,
    running_jwks_server,
)


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
        JwksUrl("http://localhost./jwks.json", line=1),  # an absolute DNS name, not the loopback name
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
