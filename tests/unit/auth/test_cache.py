from __future__ import annotations

from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authproxy.auth.cache import CacheStats, VerificationCache
from authproxy.auth.claims import Identity
from authproxy.auth.keys import KeyEntry, KeyRing
from authproxy.auth.verified import VerifiedToken
from authproxy.auth.verify import Verifier
from authproxy.config.model import JwtConfig, SecretKey
from authproxy.errors import InvalidToken, KeyNotFound
from tests.rigs.keys import Mint, StaticRemote, new_hs_secret

NOW = 1_800_000_000.0


def _token(exp: float = NOW + 60, nbf: float | None = None) -> VerifiedToken:
    return VerifiedToken(
        MappingProxyType({"sub": "u"}), exp, nbf, None, "HS256", Identity("u", None, frozenset(), None)
    )


def _verifier(secret: bytes, cache_size: int = 10_000, leeway: float = 0.0) -> Verifier:
    config = JwtConfig(algorithms=("HS256",), keys=(SecretKey(secret, 1, "secret"),), leeway=leeway)
    return Verifier(config, KeyRing.build(config), cache_size)


# --- VerificationCache on its own ---------------------------------------------------------------


def test_hit_returns_stored_token() -> None:
    cache = VerificationCache(4, leeway=0)
    stored = _token()
    assert cache.get(b"d1", 0, NOW) is None
    cache.put(b"d1", 0, stored)
    assert cache.get(b"d1", 0, NOW) is stored
    assert cache.stats() == CacheStats(hits=1, misses=1, size=1, capacity=4)


def test_other_digest_never_hits() -> None:
    cache = VerificationCache(4, leeway=0)
    cache.put(b"d1", 0, _token())
    assert cache.get(b"d2", 0, NOW) is None


def test_expired_entry_is_refused_and_evicted() -> None:
    cache = VerificationCache(4, leeway=5)
    cache.put(b"d", 0, _token(exp=NOW))
    assert cache.get(b"d", 0, NOW + 4) is not None  # within leeway
    with pytest.raises(InvalidToken, match="token expired"):
        cache.get(b"d", 0, NOW + 5)
    assert cache.stats().size == 0


def test_not_yet_valid_entry_is_refused_but_kept() -> None:
    cache = VerificationCache(4, leeway=0)
    cache.put(b"d", 0, _token(nbf=NOW + 10))
    with pytest.raises(InvalidToken, match="token not yet valid"):
        cache.get(b"d", 0, NOW)
    assert cache.get(b"d", 0, NOW + 10) is not None


def test_generation_change_makes_old_entries_unreachable() -> None:
    cache = VerificationCache(4, leeway=0)
    cache.put(b"d", 0, _token())
    assert cache.get(b"d", 1, NOW) is None
    assert cache.stats().size == 0


def test_lru_bound_evicts_least_recently_used() -> None:
    cache = VerificationCache(2, leeway=0)
    cache.put(b"a", 0, _token())
    cache.put(b"b", 0, _token())
    assert cache.get(b"a", 0, NOW) is not None  # a is now the most recent
    cache.put(b"c", 0, _token())
    assert cache.stats().size == 2
    assert cache.get(b"b", 0, NOW) is None
    assert cache.get(b"a", 0, NOW) is not None and cache.get(b"c", 0, NOW) is not None


def test_zero_capacity_disables_cache() -> None:
    cache = VerificationCache(0, leeway=0)
    cache.put(b"d", 0, _token())
    assert cache.get(b"d", 0, NOW) is None


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        VerificationCache(-1, leeway=0)


# --- through Verifier -------------------------------------------------------------------------


def test_repeated_token_is_served_from_cache(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret)
    token = mint(exp=NOW + 60, iat=NOW)
    first = verifier.verify(token, now=NOW)
    assert verifier.verify(token, now=NOW + 1) is first
    stats = verifier.cache_stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)


def test_expiry_is_honoured_on_a_hit(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret, leeway=10)
    token = mint(exp=NOW + 60, iat=NOW)
    verifier.verify(token, now=NOW)
    assert verifier.verify(token, now=NOW + 69)
    with pytest.raises(InvalidToken, match="token expired"):
        verifier.verify(token, now=NOW + 70)
    assert verifier.cache_stats().size == 0


def test_nbf_is_honoured_on_a_hit(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret)
    token = mint(exp=NOW + 60, iat=NOW - 10, nbf=NOW)
    verifier.verify(token, now=NOW)
    with pytest.raises(InvalidToken, match="token not yet valid"):
        verifier.verify(token, now=NOW - 1)


def test_invalid_token_is_never_cached(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret)
    forged = mint(key=new_hs_secret(), exp=NOW + 60)
    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature verification failed"):
            verifier.verify(forged, now=NOW)
    expired = mint(exp=NOW - 1, iat=NOW - 100)
    with pytest.raises(InvalidToken, match="token expired"):
        verifier.verify(expired, now=NOW)
    stats = verifier.cache_stats()
    assert (stats.hits, stats.misses, stats.size) == (0, 3, 0)


def test_different_tokens_do_not_share_entries(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret)
    one = verifier.verify(mint({"sub": "alice"}, exp=NOW + 60, iat=NOW), now=NOW)
    two = verifier.verify(mint({"sub": "mallory"}, exp=NOW + 60, iat=NOW), now=NOW)
    assert (one.claims["sub"], two.claims["sub"]) == ("alice", "mallory")
    assert verifier.cache_stats().hits == 0


def test_verifier_cache_is_bounded(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(hs_secret, cache_size=3)
    for n in range(10):
        verifier.verify(mint({"n": n}, exp=NOW + 60, iat=NOW), now=NOW)
    assert verifier.cache_stats().size == 3


def test_removed_key_invalidates_cached_tokens(mint: Mint, rsa_private_key: rsa.RSAPrivateKey) -> None:
    entry = KeyEntry("k", "RSA", rsa_private_key.public_key(), frozenset({"RS256"}))
    remote = StaticRemote((entry,))
    config = JwtConfig(algorithms=("RS256",), keys=())
    verifier = Verifier(config, KeyRing.build(config, [remote]))
    token = mint(alg="RS256", headers={"kid": "k"}, exp=NOW + 60, iat=NOW)
    verifier.verify(token, now=NOW)
    verifier.verify(token, now=NOW)
    assert verifier.cache_stats().hits == 1
    remote.replace(())  # the IdP rotated the key out
    with pytest.raises(KeyNotFound):
        verifier.verify(token, now=NOW)
