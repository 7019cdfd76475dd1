"""Fixtures shared by every suite: real keys (generated once per session) and a token factory."""

from __future__ import annotations

from typing import Any

import pytest
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
