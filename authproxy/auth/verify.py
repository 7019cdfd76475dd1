"""Verifier.verify(token) -> VerifiedToken: the only place PyJWT exceptions become InvalidToken(reason).

PyJWT checks the signature (with algorithms pinned by config and by the key); time, audience and issuer
claims are checked here so that `now` can be given and so that `exp` is required, not merely honoured.
Reasons are fixed phrases: they never echo the token, a claim value or a key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jwt.api_jws import PyJWS
from jwt.exceptions import (
    InvalidAlgorithmError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTokenError,
)

from authproxy.auth.cache import CacheStats, VerificationCache
from authproxy.auth.claims import identity_from_claims
from authproxy.auth.keys import KeyEntry, KeyRing
from authproxy.auth.verified import VerifiedToken
from authproxy.config.model import JwtConfig
from authproxy.errors import InvalidToken, KeyNotFound
from authproxy.standards.jose import SUPPORTED_ALGORITHMS

__all__ = ["MAX_TOKEN_LENGTH", "IssuerMismatch", "Verifier"]

MAX_TOKEN_LENGTH = 16 * 1024  # far above any real JWT; bounds the work an unauthenticated client can cause
# base64url, optionally padded (some issuers pad); a length of 4n+1 can never decode.
_B64URL_SEGMENT = re.compile(r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?={0,2}")


class IssuerMismatch(InvalidToken):
    """The token's `iss` is not the configured issuer, or not the one its key is pinned to. Its own type
    because the verifier goes on to the next candidate key on this refusal, and on no other."""

    def __init__(self) -> None:
        super().__init__("issuer mismatch")


class Verifier:
    def __init__(self, jwt: JwtConfig, keys: KeyRing, cache_size: int = 10_000) -> None:
        self._keys = keys
        self._algorithms = frozenset(jwt.algorithms) & SUPPORTED_ALGORITHMS
        # Prebuilt so the hot path passes PyJWT a one-element allow-list without allocating it.
        self._allow = {alg: [alg] for alg in self._algorithms}
        self._jws = PyJWS(algorithms=sorted(self._algorithms))
        self._leeway = jwt.leeway
        self._audience = frozenset(jwt.audience) if jwt.audience is not None else None
        self._issuer = jwt.issuer
        self._claim_paths = jwt.claims
        self._cache = VerificationCache(cache_size, jwt.leeway)

    def verify(self, token: str, now: float | None = None) -> VerifiedToken:
        """Verify signature and claims; InvalidToken(reason), or KeyNotFound when no key matches."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too large")
        if not token.isascii():
            raise InvalidToken("malformed token")
        if now is None:
            now = time.time()
        generation = self._keys.generation
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._cache.get(digest, generation, now)
        if cached is not None:
            return cached
        verified = self._verify_uncached(token, now)
        self._cache.put(digest, generation, verified)
        return verified

    def cache_stats(self) -> CacheStats:
        return self._cache.stats()

    def _verify_uncached(self, token: str, now: float) -> VerifiedToken:
        alg, kid = self._read_header(token)
        candidates = self._keys.candidates(kid, alg)
        if not candidates:
            raise KeyNotFound("unknown key id" if kid is not None else "no key for algorithm", kid)
        refusal: IssuerMismatch | None = None
        for entry in candidates:
            claims = self._signed_claims(token, alg, entry)
            if claims is None:
                continue
            try:
                exp, nbf = self._check_claims(claims, entry, now)
            except IssuerMismatch as exc:
                if entry.issuer is None:
                    raise
                # Issuers may share keys (multi-tenant IdPs): another candidate may own this `iss`.
                refusal = exc
                continue
            identity = identity_from_claims(claims, self._claim_paths)  # InvalidToken on a mistyped claim
            return VerifiedToken(MappingProxyType(claims), exp, nbf, kid, alg, identity)
        raise refusal or InvalidToken("signature verification failed")

    def _read_header(self, token: str) -> tuple[str, str | None]:
        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm not allowed")  # "none" in any case, and anything unconfigured
        if "crit" in header:
            raise InvalidToken("unsupported critical header")  # we understand no extensions
        # jku, x5u, jwk and x5c are never read: keys come from configuration only.
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token header")
        return alg, kid

    def _signed_claims(self, token: str, alg: str, entry: KeyEntry) -> dict[str, Any] | None:
        """The payload if `entry` verifies the signature, None if it does not."""
        if alg not in entry.algorithms:
            return None
        try:
            decoded = self._jws.decode_complete(token, key=entry.key, algorithms=self._allow[alg])
        except InvalidSignatureError:
            return None
        except InvalidKeyError:
            return None  # this key cannot serve this algorithm (PyJWT's own family guard)
        except InvalidAlgorithmError as exc:
            raise InvalidToken("algorithm not allowed") from exc
        except InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc
        try:
            claims = json.loads(decoded["payload"], object_pairs_hook=_unique_object)
        except (ValueError, RecursionError) as exc:
            raise InvalidToken("malformed token") from exc
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token")
        return claims

    def _check_claims(
        self, claims: Mapping[str, Any], entry: KeyEntry, now: float
    ) -> tuple[float, float | None]:
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise InvalidToken("exp claim is missing")
        if exp <= now - self._leeway:
            raise InvalidToken("token expired")
        nbf = _numeric_date(claims, "nbf")
        if nbf is not None and nbf > now + self._leeway:
            raise InvalidToken("token not yet valid")
        iat = _numeric_date(claims, "iat")
        if iat is not None and iat > now + self._leeway:
            raise InvalidToken("token issued in the future")
        iss = claims.get("iss")
        if (self._issuer is not None and iss != self._issuer) or (
            entry.issuer is not None and iss != entry.issuer
        ):
            raise IssuerMismatch()
        if self._audience is not None:
            _check_audience(claims.get("aud"), self._audience)
        return exp, nbf


def _check_audience(aud: object, accepted: frozenset[str]) -> None:
    if isinstance(aud, str):
        if aud in accepted:
            return
    elif isinstance(aud, list):
        if not all(isinstance(item, str) for item in aud):
            raise InvalidToken("aud claim has the wrong type")
        if not accepted.isdisjoint(aud):
            return
    elif aud is not None:
        raise InvalidToken("aud claim has the wrong type")
    raise InvalidToken("audience mismatch")


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose alg and key; PyJWT re-reads it from the same bytes when it
    verifies. Parsed here because PyJWT's own reader validates base64 byte by byte in Python, and doing
    that once per token instead of twice halves the cost of an uncached HS256 verification."""
    segment, dot, _ = token.partition(".")
    if not dot or _B64URL_SEGMENT.fullmatch(segment) is None:
        raise InvalidToken("malformed token")
    stripped = segment.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
        # A member given twice ({"alg":"none","alg":"RS256"}) is ambiguous: refused, as in the payload.
        header = json.loads(raw, object_pairs_hook=_unique_object)
    except (ValueError, RecursionError) as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InvalidToken("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    return header


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass, and PyJWT would accept "123" via int(): both are refused here, as are
    # NaN, Infinity and integers too large for a float.
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise InvalidToken(f"{name} claim is not a number")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A claim given twice is ambiguous: refuse rather than silently keep the last copy.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate claim name")
    return obj
