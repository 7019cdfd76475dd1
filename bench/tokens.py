"""Keys and tokens for one bench run: generated fresh, written under the run's work directory."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["AUDIENCE", "SCOPES", "KeySet", "make_keys"]

AUDIENCE = "bench"
SCOPES = ("agents:read", "agents:run")
_TTL = 4 * 3600.0  # outlives any run, so no token expires mid-measurement


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True)
class KeySet:
    """One RSA, one EC P-256 key and one HMAC secret; public halves written to `folder`."""

    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    hmac_secret: str
    rsa_public: Path
    ec_public: Path

    def claims(self, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "sub": "bench-user",
            "aud": AUDIENCE,
            "scopes": list(SCOPES),
            "iat": now,
            "exp": now + int(_TTL),
            **extra,
        }

    def token(self, alg: str, **extra: Any) -> str:
        key: Any = {"RS256": self.rsa_key, "ES256": self.ec_key, "HS256": self.hmac_secret}[alg]
        return jwt.encode(self.claims(**extra), key, algorithm=alg)

    def distinct_rs256(self, count: int) -> Iterator[str]:
        """`count` valid RS256 tokens that differ from each other (a `jti` each): every one a cache miss."""
        for i in range(count):
            yield self.token("RS256", jti=f"bench-{i}")

    def rsa_jwks(self) -> str:
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        jwk.update({"alg": "RS256", "use": "sig"})
        return json.dumps({"keys": [jwk]})


def make_keys(folder: Path) -> KeySet:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_public, ec_public = folder / "rsa-public.pem", folder / "ec-public.pem"
    rsa_public.write_bytes(_public_pem(rsa_key))
    ec_public.write_bytes(_public_pem(ec_key))
    return KeySet(rsa_key, ec_key, secrets.token_urlsafe(32), rsa_public, ec_public)
