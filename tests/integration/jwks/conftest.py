"""Fixtures of the JwksSource tests: two RSA keys and their JWKs, a running JWKS server, a fake clock, and
a source factory that closes every source it made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authproxy.auth.jwks import JwksSource
from authproxy.config.model import JwksUrl, OidcIssuer
from tests.rigs.jwks import INTERVAL, RS256, FakeClock, JwksServer, MakeSource, rsa_jwk, running_jwks_server


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
