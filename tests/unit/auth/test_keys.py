from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from authproxy.auth.keys import KeyEntry, KeyRing, RemoteKeys, entries_from_jwks, entry_from_pem
from authproxy.config.model import JwksFile, JwksUrl, JwtConfig, OidcIssuer, PublicKeyFile, SecretKey
from tests.rigs.keys import StaticRemote, jwks, new_ec_key, public_jwk, public_pem, secret_jwk

ALL = frozenset({"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"})


def _pem_file(key: Any, kid: str | None = None) -> PublicKeyFile:
    return PublicKeyFile(path="k.pem", pem=public_pem(key), line=1, kid=kid)


def test_static_remote_satisfies_protocol() -> None:
    remote: RemoteKeys = StaticRemote()
    assert remote.ready


def test_jwks_entries_have_family_algorithms(
    rsa_private_key: rsa.RSAPrivateKey,
    ec_p256_private_key: ec.EllipticCurvePrivateKey,
    ec_p384_private_key: ec.EllipticCurvePrivateKey,
    ec_p521_private_key: ec.EllipticCurvePrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
    hs_secret: bytes,
) -> None:
    document = jwks(
        public_jwk(rsa_private_key, "rsa"),
        public_jwk(ec_p256_private_key, "p256"),
        public_jwk(ec_p384_private_key, "p384"),
        public_jwk(ec_p521_private_key, "p521"),
        public_jwk(ed25519_private_key, "ed"),
        secret_jwk(hs_secret, "hs"),
    )
    by_kid = {entry.kid: entry for entry in entries_from_jwks(document, ALL)}
    assert by_kid["rsa"].algorithms == {"RS256", "PS256"} and by_kid["rsa"].kty == "RSA"
    assert by_kid["p256"].algorithms == {"ES256"}
    assert by_kid["p384"].algorithms == {"ES384"}
    assert by_kid["p521"].algorithms == {"ES512"}
    assert by_kid["ed"].algorithms == {"EdDSA"} and by_kid["ed"].kty == "OKP"
    assert by_kid["hs"].algorithms == {"HS256", "HS384", "HS512"} and by_kid["hs"].key == hs_secret
    assert isinstance(by_kid["rsa"].key, rsa.RSAPublicKey)


def test_jwk_alg_member_narrows_algorithms(rsa_private_key: rsa.RSAPrivateKey) -> None:
    (entry,) = entries_from_jwks(jwks(public_jwk(rsa_private_key, "a", alg="PS256")), ALL)
    assert entry.algorithms == {"PS256"}


def test_jwks_issuer_is_carried(rsa_private_key: rsa.RSAPrivateKey) -> None:
    (entry,) = entries_from_jwks(jwks(public_jwk(rsa_private_key)), ALL, issuer="https://idp")
    assert entry.issuer == "https://idp" and entry.kid is None


def test_jwks_private_members_yield_public_key(rsa_private_key: rsa.RSAPrivateKey) -> None:
    from jwt.algorithms import RSAAlgorithm

    private_jwk = dict(RSAAlgorithm.to_jwk(rsa_private_key, as_dict=True), kid="p")
    (entry,) = entries_from_jwks(jwks(private_jwk), ALL)
    assert isinstance(entry.key, rsa.RSAPublicKey)


@pytest.mark.parametrize(
    "change",
    [
        {"use": "enc"},
        {"alg": "RS512"},  # not configured
        {"alg": "ES256"},  # wrong family for an RSA key
        {"alg": 5},
        {"kid": 5},
        {"kty": "DSA"},
        {"n": "AA"},  # not a usable modulus
        {"n": 5},
    ],
)
def test_unusable_jwks_key_is_skipped(rsa_private_key: rsa.RSAPrivateKey, change: dict[str, Any]) -> None:
    bad = public_jwk(rsa_private_key, "bad") | change
    good = public_jwk(rsa_private_key, "good")
    assert [e.kid for e in entries_from_jwks(jwks(bad, good), ALL)] == ["good"]


def test_unsupported_curves_are_skipped() -> None:
    secp256k1 = public_jwk(new_ec_key(ec.SECP256K1()), "k1")
    ed448_jwk = {"kty": "OKP", "crv": "Ed448", "x": "AAAA", "kid": "448"}
    assert entries_from_jwks(jwks(secp256k1, ed448_jwk, {"not": "a key"}), ALL) == ()
    assert entries_from_jwks({"keys": ["string member"]}, ALL) == ()


def test_key_without_configured_family_is_skipped(rsa_private_key: rsa.RSAPrivateKey) -> None:
    assert entries_from_jwks(jwks(public_jwk(rsa_private_key)), frozenset({"HS256"})) == ()


@pytest.mark.parametrize("document", [{}, {"keys": {}}, {"keys": "x"}, []])
def test_malformed_jwks_document_is_refused(document: Any) -> None:
    with pytest.raises(ValueError):
        entries_from_jwks(document, ALL)


def test_pem_entries_per_key_type(
    rsa_private_key: rsa.RSAPrivateKey,
    ec_p384_private_key: ec.EllipticCurvePrivateKey,
    ed25519_private_key: ed25519.Ed25519PrivateKey,
) -> None:
    assert entry_from_pem(public_pem(rsa_private_key), ALL, "r").algorithms == {"RS256", "PS256"}
    assert entry_from_pem(public_pem(ec_p384_private_key), ALL, None).algorithms == {"ES384"}
    ed = entry_from_pem(public_pem(ed25519_private_key), ALL, "e")
    assert (ed.kty, ed.kid, ed.algorithms) == ("OKP", "e", frozenset({"EdDSA"}))


@pytest.mark.parametrize(
    "pem",
    [
        b"not a pem",
        ed448.Ed448PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public_pem(new_ec_key(ec.SECP256K1())),
    ],
)
def test_unsupported_pem_is_refused(pem: bytes) -> None:
    with pytest.raises(ValueError):
        entry_from_pem(pem, ALL, None)


def test_private_key_pem_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        entry_from_pem(pem, ALL, None)


def test_build_reads_every_static_source(
    rsa_private_key: rsa.RSAPrivateKey, ed25519_private_key: ed25519.Ed25519PrivateKey, hs_secret: bytes
) -> None:
    document = json.dumps(jwks(public_jwk(ed25519_private_key, "ed"))).encode()
    config = JwtConfig(
        algorithms=("HS256", "RS256", "EdDSA"),
        keys=(
            SecretKey(hs_secret, line=1, origin="secret", kid="hs"),
            _pem_file(rsa_private_key, kid="rsa"),
            JwksFile(path="j.json", document=document, line=3),
            JwksUrl(url="https://idp/jwks", line=4),
            OidcIssuer(issuer="https://idp", line=5),
        ),
    )
    ring = KeyRing.build(config)
    assert [(e.kid, e.algorithms) for e in ring.entries] == [
        ("hs", frozenset({"HS256"})),
        ("rsa", frozenset({"RS256"})),
        ("ed", frozenset({"EdDSA"})),
    ]
    assert ring.ready and ring.generation == 0


def test_build_drops_keys_admitting_no_configured_algorithm(
    rsa_private_key: rsa.RSAPrivateKey, hs_secret: bytes
) -> None:
    config = JwtConfig(
        algorithms=("RS256",), keys=(SecretKey(hs_secret, 1, "secret"), _pem_file(rsa_private_key))
    )
    assert [e.kty for e in KeyRing.build(config).entries] == ["RSA"]


def test_build_refuses_invalid_jwks_file() -> None:
    config = JwtConfig(algorithms=("RS256",), keys=(JwksFile(path="j.json", document=b"{nope", line=1),))
    with pytest.raises(ValueError, match=r"j\.json"):
        KeyRing.build(config)


def _entry(kid: str | None, *algs: str, key: object = b"k") -> KeyEntry:
    return KeyEntry(kid, "oct", key, frozenset(algs))


def test_candidates_by_kid_and_alg() -> None:
    a, b = _entry("a", "HS256"), _entry("b", "HS256", "HS512")
    ring = KeyRing((a, b))
    assert ring.candidates("a", "HS256") == (a,)
    assert ring.candidates("b", "HS512") == (b,)
    assert ring.candidates("a", "HS512") == ()


def test_unknown_kid_falls_back_to_kidless_keys_only() -> None:
    kidless, with_kid = _entry(None, "HS256"), _entry("a", "HS256")
    assert KeyRing((kidless, with_kid)).candidates("rotated", "HS256") == (kidless,)
    assert KeyRing((with_kid,)).candidates("rotated", "HS256") == ()


def test_token_without_kid_prefers_kidless_keys() -> None:
    kidless, with_kid = _entry(None, "HS256"), _entry("a", "HS256")
    assert KeyRing((kidless, with_kid)).candidates(None, "HS256") == (kidless,)
    assert KeyRing((with_kid,)).candidates(None, "HS256") == (with_kid,)
    assert KeyRing((with_kid,)).candidates(None, "HS384") == ()


async def test_remote_entries_join_and_generation_follows() -> None:
    static = _entry("s", "HS256")
    remote = StaticRemote(ready=False)
    ring = KeyRing((static,), [remote])
    assert bool(ring.ready) is False  # bool(): mypy would otherwise keep `ready` narrowed below
    assert ring.candidates("r", "HS256") == ()
    fresh = _entry("r", "HS256")
    remote.replace((fresh,))
    assert ring.ready and ring.generation == 1
    assert ring.candidates("r", "HS256") == (fresh,)
    assert ring.candidates("s", "HS256") == (static,)
    remote.replace(())
    assert ring.generation == 2 and ring.candidates("r", "HS256") == ()


async def test_lifecycle_and_refresh_delegate_to_remotes() -> None:
    quiet, changing = StaticRemote(), StaticRemote()
    changing.next_entries = (_entry("new", "HS256"),)
    ring = KeyRing((), [quiet, changing])
    await ring.start()
    assert quiet.started and changing.started
    assert await ring.refresh_for_unknown_kid("new") is True
    assert quiet.refreshed == ["new"] and changing.refreshed == ["new"]
    assert ring.candidates("new", "HS256")
    await ring.close()
    assert quiet.closed and changing.closed


async def test_refresh_without_remotes_is_false() -> None:
    assert await KeyRing(()).refresh_for_unknown_kid("x") is False
