"""Fixtures shared by every suite: real keys (generated once per session), a token factory, and the
blocking-call guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.rigs.keys import (
    Mint,
    PrivateKey,
    SigningKeys,
    mint_token,
    new_ec_key,
    new_ed25519_key,
    new_hs_secret,
    new_rsa_key,
)


@pytest.fixture(autouse=True)
def no_blocking_on_the_event_loop() -> Iterator[BlockBuster]:
    """A blocking call (file, socket, sleep, lock) made by authproxy's code while an event loop runs in
    that thread fails the test with BlockingError: one such call stalls every connection of a worker.

    Only authproxy's own frames are scanned (a test may write its files on the loop). authproxy reads config
    and key files in a thread (reload, explain) or before the loop starts (serve). Allowed, with reasons:
    """
    with blockbuster_ctx("authproxy") as guard:
        for function in guard.functions.values():
            # /metrics: prometheus_client's process collector reads /proc/<pid>/{stat,limits,fd}, which the
            # kernel serves from memory; no disk or network wait can stall the loop there.
            function.can_block_in("prometheus_client/process_collector.py", "collect")
        yield guard


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture(scope="session")
def ec_p256_private_key() -> ec.EllipticCurvePrivateKey:
    return new_ec_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ec_p384_private_key() -> ec.EllipticCurvePrivateKey:
    return new_ec_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def ec_p521_private_key() -> ec.EllipticCurvePrivateKey:
    return new_ec_key(ec.SECP521R1())


@pytest.fixture(scope="session")
def ed25519_private_key() -> ed25519.Ed25519PrivateKey:
    return new_ed25519_key()


@pytest.fixture(scope="session")
def hs_secret() -> bytes:
    return new_hs_secret()


@pytest.fixture(scope="session")
def signing_keys(
    hs_secret: bytes,
    rsa_private_key: rsa.RSAPrivateKey,
    ec_p256_private_key: ec.EllipticCurvePrivateKey,
    ec_p384_private_key: ec.EllipticCurvePrivateKey,
    ec_p521_private_key: ec.EllipticCurvePrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> SigningKeys:
    return SigningKeys(
        hs_secret,
        rsa_private_key,
        ec_p256_private_key,
        ec_p384_private_key,
        ec_p521_private_key,
        ed25519_private_key,
    )


@pytest.fixture
def mint(signing_keys: SigningKeys) -> Mint:
    """`mint(claims=None, *, alg="HS256", key=None, headers=None, ttl=300, **overrides) -> str`.

    iat/exp are filled from the clock unless given; `key` defaults to the session key for `alg`;
    an override of None removes that claim (`mint(exp=None)` mints a token without exp).
    """

    def _mint(
        claims: dict[str, Any] | None = None,
        *,
        alg: str = "HS256",
        key: bytes | PrivateKey | None = None,
        headers: dict[str, Any] | None = None,
        ttl: float = 300,
        **overrides: Any,
    ) -> str:
        signing_key = signing_keys.for_alg(alg) if key is None else key
        return mint_token(claims, key=signing_key, alg=alg, headers=headers, ttl=ttl, **overrides)

    return _mint
