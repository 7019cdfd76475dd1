"""Micro-benchmark of token verification (not a test): Verifier.verify µs per call, uncached vs cached.

Uncached: cache_size=0, so every call runs PyJWT's signature check. Cached: the same token again, a cache
hit (sha256 of the token + key generation, then the time bounds re-checked).
Run: .venv/bin/python bench/verify_cost.py
"""

from __future__ import annotations

import secrets
import statistics
import time

from cryptography.hazmat.primitives import serialization

from authproxy.auth.keys import KeyRing
from authproxy.auth.mint import generate_private_key, mint_token
from authproxy.auth.verify import Verifier
from authproxy.config.model import JwtConfig, KeySource, PublicKeyFile, SecretKey


def _per_call(verifier: Verifier, token: str, n: int) -> float:
    verifier.verify(token)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            verifier.verify(token)
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    secret = secrets.token_bytes(64)
    cases: dict[str, tuple[KeySource, object]] = {"HS256": (SecretKey(secret, 1, "secret"), secret)}
    for alg, kind in (("RS256", "rsa"), ("ES256", "ec"), ("EdDSA", "ed25519")):
        key = generate_private_key(kind)  # type: ignore[arg-type]
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        cases[alg] = (PublicKeyFile("bench.pem", pem, 1), key)
    print(f"{'alg':6} {'uncached µs':>12} {'cached µs':>10}")
    for alg, (source, signing) in cases.items():
        jwt = JwtConfig(algorithms=(alg,), keys=(source,), audience=("bench",))
        keys = KeyRing.build(jwt)
        token = mint_token({"sub": "u", "aud": "bench", "scopes": ["agents:read"]}, alg=alg, key=signing)  # type: ignore[arg-type]
        uncached = _per_call(Verifier(jwt, keys, cache_size=0), token, 500)
        cached = _per_call(Verifier(jwt, keys), token, 20_000)
        print(f"{alg:6} {uncached:12.1f} {cached:10.2f}")


if __name__ == "__main__":
    main()
