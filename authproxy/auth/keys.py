"""Verification keys: prepared once at load, indexed by (kid, alg), combined with remote sources.

PyJWT does the JOSE work; this module owns which key may verify which algorithm. Every entry carries
the algorithms it admits (config ∩ its family ∩ its JWK `alg`), so HS/RS confusion cannot happen here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from authproxy.config.model import JwksFile, JwtConfig, PublicKeyFile, SecretKey
from authproxy.standards.jose import (
    EC_CURVE_ALGORITHMS,
    HMAC_ALGORITHMS,
    OKP_ALGORITHMS,
    RSA_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    key_algorithms,
)

__all__ = [
    "KeyEntry",
    "KeyRing",
    "RemoteKeys",
    "entries_from_jwks",
    "entry_from_pem",
]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One prepared verification key and the algorithms it may verify."""

    kid: str | None
    kty: str  # "oct" | "RSA" | "EC" | "OKP"
    key: Any  # bytes for HMAC, a cryptography public key otherwise: what jwt.decode accepts as is
    algorithms: frozenset[str]
    issuer: str | None = None  # set by OIDC sources: `iss` must then equal it


class RemoteKeys(Protocol):
    """A key source refreshed in the background (auth/jwks.py); KeyRing reads it on every lookup."""

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        """The last good key set (empty until the first successful load)."""
        ...

    @property
    def generation(self) -> int:
        """Increments whenever `entries` changes; verification cache keys include it."""
        ...

    @property
    def ready(self) -> bool:
        """True once a key set was loaded at least once."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - same contract as JwksSource
        """Wait (at most `timeout` seconds) for a first key set; True once one is loaded."""
        ...

    async def refresh_for_unknown_kid(self, kid: str | None) -> bool:
        """Refetch now unless rate-limited; True if the key set changed."""
        ...


def _family_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """Algorithms a JWK's key type (and curve) can verify; empty when unsupported."""
    kty = jwk.get("kty")
    if kty == "oct":
        return HMAC_ALGORITHMS
    if kty == "RSA":
        return RSA_ALGORITHMS
    crv = jwk.get("crv")
    if kty == "EC" and isinstance(crv, str) and crv in EC_CURVE_ALGORITHMS:
        return frozenset({EC_CURVE_ALGORITHMS[crv]})
    if kty == "OKP" and isinstance(crv, str) and crv in OKP_ALGORITHMS:
        return frozenset({OKP_ALGORITHMS[crv]})
    return frozenset()


def _public_half(key: Any) -> Any:
    # A JWKS that (wrongly) publishes private parameters still verifies with its public half only.
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key.public_key()
    return key


def _entry_from_jwk(
    jwk: Mapping[str, Any], algorithms: frozenset[str], issuer: str | None
) -> KeyEntry | None:
    use, kid, alg = jwk.get("use"), jwk.get("kid"), jwk.get("alg")
    if use is not None and use != "sig":
        return None
    if kid is not None and not isinstance(kid, str):
        return None
    admitted = algorithms & _family_algorithms(jwk)
    if alg is not None:
        admitted = admitted & {alg} if isinstance(alg, str) else frozenset()
    if not admitted:
        return None
    try:
        loaded = PyJWK(dict(jwk), algorithm=min(admitted)).key
    except (PyJWTError, KeyError, TypeError, ValueError):
        return None  # unusable key material: skipped like an unsupported type, the rest still load
    return KeyEntry(kid, str(jwk["kty"]), _public_half(loaded), admitted, issuer)


def entries_from_jwks(
    document: Mapping[str, Any], algorithms: frozenset[str], *, issuer: str | None = None
) -> tuple[KeyEntry, ...]:
    """Entries for the usable signing keys of a JWKS; ValueError only when the document is malformed."""
    if not isinstance(document, Mapping):
        raise ValueError("JWKS document is not a JSON object")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError('JWKS document has no "keys" list')
    entries = (_entry_from_jwk(jwk, algorithms, issuer) for jwk in keys if isinstance(jwk, Mapping))
    return tuple(entry for entry in entries if entry is not None)


def entry_from_pem(pem: bytes, algorithms: frozenset[str], kid: str | None) -> KeyEntry:
    """Entry for a PEM public key; ValueError unless it is RSA, EC (P-256/384/521) or Ed25519."""
    key = load_pem_public_key(pem)  # raises ValueError on anything that is not a PEM public key
    kty, admitted = key_algorithms(key)  # ValueError unless RSA, EC or Ed25519
    if isinstance(key, ec.EllipticCurvePublicKey) and not admitted:
        raise ValueError(f"unsupported EC curve {key.curve.name}")
    return KeyEntry(kid, kty, key, algorithms & admitted)


def _static_entries(jwt: JwtConfig, algorithms: frozenset[str]) -> tuple[KeyEntry, ...]:
    entries: list[KeyEntry] = []
    for source in jwt.keys:
        if isinstance(source, SecretKey):
            entries.append(KeyEntry(source.kid, "oct", source.secret, algorithms & HMAC_ALGORITHMS))
        elif isinstance(source, PublicKeyFile):
            entries.append(entry_from_pem(source.pem, algorithms, source.kid))
        elif isinstance(source, JwksFile):
            try:
                document = json.loads(source.document)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{source.path}: JWKS is not valid JSON") from exc
            entries.extend(entries_from_jwks(document, algorithms))
        # JwksUrl / OidcIssuer: the runtime builds RemoteKeys for them and passes them in.
    return tuple(entry for entry in entries if entry.algorithms)


@dataclass(frozen=True, slots=True)
class _Index:
    """Lookup tables for one key-set generation; replaced whole, never mutated."""

    generation: int
    by_kid: Mapping[tuple[str, str], tuple[KeyEntry, ...]]  # (kid, alg)
    kidless: Mapping[str, tuple[KeyEntry, ...]]  # alg -> entries without kid
    by_alg: Mapping[str, tuple[KeyEntry, ...]]  # alg -> every entry


def _build_index(generation: int, entries: Sequence[KeyEntry]) -> _Index:
    by_kid: dict[tuple[str, str], list[KeyEntry]] = {}
    kidless: dict[str, list[KeyEntry]] = {}
    by_alg: dict[str, list[KeyEntry]] = {}
    for entry in entries:
        for alg in entry.algorithms:
            by_alg.setdefault(alg, []).append(entry)
            if entry.kid is None:
                kidless.setdefault(alg, []).append(entry)
            else:
                by_kid.setdefault((entry.kid, alg), []).append(entry)
    return _Index(
        generation,
        {k: tuple(v) for k, v in by_kid.items()},
        {k: tuple(v) for k, v in kidless.items()},
        {k: tuple(v) for k, v in by_alg.items()},
    )


class KeyRing:
    """Static keys (built once) plus remote sources; `candidates` is the hot-path lookup."""

    def __init__(self, static: tuple[KeyEntry, ...], remotes: Sequence[RemoteKeys] = ()) -> None:
        self._static = static
        self._remotes = tuple(remotes)
        self._index = _build_index(self.generation, self._all_entries())

    @classmethod
    def build(cls, jwt: JwtConfig, remotes: Sequence[RemoteKeys] = ()) -> KeyRing:
        """Prepare every secret, PEM and JWKS-file key of `jwt`; ValueError on unusable key material."""
        algorithms = frozenset(jwt.algorithms) & SUPPORTED_ALGORITHMS
        return cls(_static_entries(jwt, algorithms), remotes)

    @property
    def generation(self) -> int:
        # Static keys never change within a ring, and each remote counter only grows, so the
        # sum changes exactly when some remote set does.
        return sum(remote.generation for remote in self._remotes)

    @property
    def ready(self) -> bool:
        return all(remote.ready for remote in self._remotes)

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        return self._all_entries()

    def _all_entries(self) -> tuple[KeyEntry, ...]:
        if not self._remotes:
            return self._static
        return self._static + tuple(entry for remote in self._remotes for entry in remote.entries)

    def candidates(self, kid: str | None, alg: str) -> Sequence[KeyEntry]:
        """Keys that may verify a token with this header: an exact kid match first, else kid-less keys.

        A token without kid falls back to every key admitting `alg` when no kid-less key exists
        (a JWKS whose keys all carry kids); a token whose kid is unknown never does.
        """
        index = self._index
        if self._remotes:
            generation = self.generation
            if generation != index.generation:
                index = self._index = _build_index(generation, self._all_entries())
        if kid is not None:
            return index.by_kid.get((kid, alg)) or index.kidless.get(alg, ())
        return index.kidless.get(alg) or index.by_alg.get(alg, ())

    async def start(self) -> None:
        for remote in self._remotes:
            await remote.start()

    async def close(self) -> None:
        for remote in self._remotes:
            await remote.close()

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - same contract as JwksSource
        """True once every remote source has a key set; False if one has none after `timeout` seconds."""
        results = await asyncio.gather(*(remote.wait_ready(timeout) for remote in self._remotes))
        return all(results)

    async def refresh_for_unknown_kid(self, kid: str | None) -> bool:
        changed = False
        for remote in self._remotes:
            changed = await remote.refresh_for_unknown_kid(kid) or changed
        return changed
