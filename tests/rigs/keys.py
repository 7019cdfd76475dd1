"""Real key material and tokens for every test suite.

Nothing here is mocked: keys are generated with cryptography and tokens are signed with PyJWT, except
the deliberately forged ones (`raw_token`, `hmac_token`) that PyJWT refuses to produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm
from multidict import CIMultiDict

from authproxy.auth.keys import KeyEntry

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

ALL_ALGORITHMS = (
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_ec_key(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve)


def new_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def new_hs_secret() -> bytes:
    # 64 printable bytes: long enough for HS512 (no key-length warning) and writable into YAML.
    return secrets.token_urlsafe(48).encode()


def public_pem(private_key: PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(private_key: PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_jwk(
    private_key: PrivateKey, kid: str | None = None, *, alg: str | None = None, use: str | None = "sig"
) -> dict[str, Any]:
    """The public JWK of a private key, with optional kid/alg/use members."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return _with_members(dict(jwk), kid, alg, use)


def secret_jwk(
    secret: bytes, kid: str | None = None, *, alg: str | None = None, use: str | None = "sig"
) -> dict[str, Any]:
    return _with_members(dict(HMACAlgorithm.to_jwk(secret, as_dict=True)), kid, alg, use)


def _with_members(jwk: dict[str, Any], kid: str | None, alg: str | None, use: str | None) -> dict[str, Any]:
    for name, value in (("kid", kid), ("alg", alg), ("use", use)):
        if value is not None:
            jwk[name] = value
    return jwk


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


@dataclass(frozen=True)
class SigningKeys:
    """One key per family; `for_alg` picks the one a given algorithm signs with."""

    hs_secret: bytes
    rsa: rsa.RSAPrivateKey
    ec_p256: ec.EllipticCurvePrivateKey
    ec_p384: ec.EllipticCurvePrivateKey
    ec_p521: ec.EllipticCurvePrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    def for_alg(self, alg: str) -> bytes | PrivateKey:
        by_alg: dict[str, bytes | PrivateKey] = {
            "ES256": self.ec_p256,
            "ES384": self.ec_p384,
            "ES512": self.ec_p521,
            "EdDSA": self.ed25519,
        }
        if alg.startswith("HS"):
            return self.hs_secret
        if alg[:2] in ("RS", "PS"):
            return self.rsa
        return by_alg[alg]


def mint_token(
    claims: dict[str, Any] | None = None,
    *,
    key: bytes | PrivateKey,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
    ttl: float = 300,
    now: float | None = None,
    **overrides: Any,
) -> str:
    """A signed token with iat=now and exp=now+ttl unless given; an override of None removes the claim."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"iat": issued, "exp": issued + int(ttl)}
    payload.update(claims or {})
    payload.update(overrides)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


class Mint(Protocol):
    """The `mint` fixture: `mint_token` with the session's key for `alg` unless `key` is given."""

    def __call__(
        self,
        claims: dict[str, Any] | None = None,
        *,
        alg: str = "HS256",
        key: bytes | PrivateKey | None = None,
        headers: dict[str, Any] | None = None,
        ttl: float = 300,
        **overrides: Any,
    ) -> str: ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand (e.g. alg "NoNe" with an empty signature) that PyJWT would not sign."""
    return f"{_segment(header)}.{_segment(payload)}.{b64url(signature)}"


def hmac_token(header: dict[str, Any], payload: dict[str, Any] | bytes, secret: bytes) -> str:
    """HMAC-sign by hand with any secret, including a public key's PEM (PyJWT refuses that on purpose).

    `payload` may be raw bytes, to sign a body that is not a JSON object at all."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    body = b64url(payload) if isinstance(payload, bytes) else _segment(payload)
    signing_input = f"{_segment(header)}.{body}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def rs256_raw(header: bytes, payload: bytes, key: rsa.RSAPrivateKey) -> str:
    """An RS256 token over header and payload bytes exactly as given (duplicate members included), signed
    with a real key: what PyJWT will not produce."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class TokenFactory(Protocol):
    """A suite's `token(*scopes, sub=…, **claims)` fixture: a token its proxy accepts."""

    def __call__(self, *scopes: str, sub: str = "user-1", **claims: Any) -> str: ...


class StaticRemote:
    """An in-process RemoteKeys for KeyRing/Verifier tests; auth/jwks.py is tested against real servers.

    `replace` swaps the set (generation + 1); `next_entries` is what an unknown-kid refresh loads."""

    def __init__(self, entries: tuple[KeyEntry, ...] = (), ready: bool = True) -> None:
        self._entries = entries
        self._generation = 0
        self._ready = ready
        self.started = False
        self.closed = False
        self.refreshed: list[str | None] = []
        self.next_entries: tuple[KeyEntry, ...] | None = None

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        return self._entries

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def ready(self) -> bool:
        return self._ready

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - same contract as JwksSource
        return self._ready

    def replace(self, entries: tuple[KeyEntry, ...]) -> None:
        self._entries = entries
        self._generation += 1
        self._ready = True

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def refresh_for_unknown_kid(self, kid: str | None) -> bool:
        self.refreshed.append(kid)
        if self.next_entries is None:
            return False
        self.replace(self.next_entries)
        return True


class Bearer(Protocol):
    """`bearer(*scopes, sub=..., **claims)`: the headers of a request carrying a fresh token."""

    def __call__(self, *scopes: str, sub: str = "alice", **claims: Any) -> CIMultiDict[str]: ...


def bearer_headers(mint: Mint, audience: str) -> Bearer:
    """Request headers with an `Authorization: Bearer` token minted for `audience` (gate unit tests)."""

    def make(*scopes: str, sub: str = "alice", **claims: Any) -> CIMultiDict[str]:
        token = mint({"sub": sub, "aud": audience, "scopes": list(scopes), **claims})
        return CIMultiDict({"Authorization": f"Bearer {token}"})

    return make
