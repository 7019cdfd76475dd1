"""Minting test tokens and generating key pairs for `authproxy token` / `authproxy keys` and policy cases.

These are conveniences for trying a policy; production tokens come from an identity provider.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from authproxy.standards.jose import EC_CURVES, KeyKind, key_algorithms

__all__ = [
    "KeyKind",
    "default_algorithm",
    "generate_private_key",
    "load_private_key",
    "mint_token",
    "write_key_pair",
]


def generate_private_key(kind: KeyKind, *, curve: str = "P-256", rsa_bits: int = 2048) -> PrivateKeyTypes:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if kind == "ec":
        if curve not in EC_CURVES:
            raise ValueError(f"unknown curve {curve!r}; use one of {', '.join(EC_CURVES)}")
        return ec.generate_private_key(EC_CURVES[curve]())
    return ed25519.Ed25519PrivateKey.generate()


def write_key_pair(kind: KeyKind, out_dir: Path, *, curve: str = "P-256") -> tuple[Path, Path]:
    """Write `<kind>-private.pem` (mode 0600) and `<kind>-public.pem` into out_dir; returns both paths."""
    key = generate_private_key(kind, curve=curve)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{kind}-private.pem", out_dir / f"{kind}-public.pem"
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.touch(mode=0o600, exist_ok=True)
    private_path.write_bytes(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(pem: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem, password=None)


def default_algorithm(key: PrivateKeyTypes) -> str:
    """The algorithm a private key signs with when none is named: RS256, ES256/384/512 by curve, or EdDSA."""
    try:
        kty, algorithms = key_algorithms(key)
    except ValueError:
        algorithms = frozenset()
    else:
        if kty == "RSA":
            return "RS256"
    if len(algorithms) != 1:
        raise ValueError(f"no default algorithm for a {type(key).__name__}; pass --alg")
    return next(iter(algorithms))


def mint_token(
    claims: Mapping[str, Any],
    *,
    alg: str,
    key: str | bytes | PrivateKeyTypes,
    ttl: float | None = 3600,
    kid: str | None = None,
    now: float | None = None,
) -> str:
    """Sign `claims` with `alg`; adds iat and (when ttl is not None and claims lack it) exp."""
    issued = int(time.time() if now is None else now)
    body: dict[str, Any] = {"iat": issued}
    if ttl is not None:
        body["exp"] = issued + int(ttl)
    body.update(claims)
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(body, key, algorithm=alg, headers=headers)  # type: ignore[arg-type]
