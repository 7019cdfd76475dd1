from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authproxy.auth.keys import KeyEntry, KeyRing, entries_from_jwks
from authproxy.auth.verify import MAX_TOKEN_LENGTH, IssuerMismatch, Verifier
from authproxy.config.model import JwksFile, JwtConfig, KeySource, PublicKeyFile, SecretKey
from authproxy.errors import InvalidToken, KeyNotFound
from tests.rigs.keys import (
    ALL_ALGORITHMS,
    Mint,
    SigningKeys,
    StaticRemote,
    hmac_token,
    jwks,
    new_hs_secret,
    new_rsa_key,
    public_jwk,
    public_pem,
    raw_token,
)

NOW = 1_800_000_000.0


def _secret(secret: bytes, kid: str | None = None) -> SecretKey:
    return SecretKey(secret, line=1, origin="secret", kid=kid)


def _pem(key: Any, kid: str | None = None) -> PublicKeyFile:
    return PublicKeyFile(path="key.pem", pem=public_pem(key), line=1, kid=kid)


def _verifier(
    *keys: KeySource,
    algorithms: tuple[str, ...] = ("HS256",),
    remotes: tuple[StaticRemote, ...] = (),
    **kw: Any,
) -> Verifier:
    config = JwtConfig(algorithms=algorithms, keys=keys, **kw)
    return Verifier(config, KeyRing.build(config, remotes))


def _refused(verifier: Verifier, token: str, reason: str, now: float = NOW) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token, now=now)
    assert caught.value.reason == reason
    return caught.value


@pytest.fixture(scope="module")
def every_family(signing_keys: SigningKeys) -> Verifier:
    keys = (
        _secret(signing_keys.hs_secret),
        _pem(signing_keys.rsa),
        _pem(signing_keys.ec_p256),
        _pem(signing_keys.ec_p384),
        _pem(signing_keys.ec_p521),
        _pem(signing_keys.ed25519),
    )
    return _verifier(*keys, algorithms=ALL_ALGORITHMS)


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_every_algorithm_family_verifies(every_family: Verifier, mint: Mint, alg: str) -> None:
    token = mint({"sub": "u1"}, alg=alg, iat=NOW, exp=NOW + 60, nbf=NOW - 1)
    verified = every_family.verify(token, now=NOW)
    assert (verified.alg, verified.kid, verified.exp, verified.nbf) == (alg, None, NOW + 60, NOW - 1)
    assert verified.claims["sub"] == "u1"


def test_verified_claims_are_read_only(mint: Mint, hs_secret: bytes) -> None:
    verified = _verifier(_secret(hs_secret)).verify(mint({"sub": "u"}))
    with pytest.raises(TypeError):
        verified.claims["sub"] = "admin"  # type: ignore[index]


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(hs_secret: bytes, alg: str) -> None:
    token = raw_token({"alg": alg, "typ": "JWT"}, {"sub": "admin", "exp": NOW + 60})
    _refused(_verifier(_secret(hs_secret)), token, "algorithm not allowed")


def test_missing_alg_is_refused(hs_secret: bytes) -> None:
    token = hmac_token({"alg": "HS256"}, {"exp": NOW + 60}, hs_secret)
    rest = token.split(".", 1)[1]
    unlabeled = raw_token({"typ": "JWT"}, {}).split(".", 1)[0] + "." + rest
    _refused(_verifier(_secret(hs_secret)), unlabeled, "algorithm not allowed")


def test_unconfigured_algorithm_is_refused(mint: Mint, hs_secret: bytes) -> None:
    _refused(_verifier(_secret(hs_secret)), mint(alg="HS512"), "algorithm not allowed")


def test_hs256_signed_with_rsa_public_key_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    forged = hmac_token({"alg": "HS256"}, {"sub": "admin", "exp": NOW + 60}, public_pem(rsa_private_key))
    _refused(_verifier(_pem(rsa_private_key), algorithms=("RS256",)), forged, "algorithm not allowed")
    # Even with HS256 allowed, the RSA key never serves HS*: no key, or the real secret's signature check.
    with pytest.raises(KeyNotFound):
        _verifier(_pem(rsa_private_key), algorithms=("HS256", "RS256")).verify(forged, now=NOW)
    both = _verifier(_secret(new_hs_secret()), _pem(rsa_private_key), algorithms=("HS256", "RS256"))
    _refused(both, forged, "signature verification failed")


def test_hs256_with_rsa_public_jwk_as_secret_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    document = json.dumps(jwks(public_jwk(rsa_private_key, "k1"))).encode()
    verifier = _verifier(JwksFile("j.json", document, 1), algorithms=("HS256", "RS256"))
    forged = hmac_token({"alg": "HS256", "kid": "k1"}, {"exp": NOW + 60}, public_pem(rsa_private_key))
    with pytest.raises(KeyNotFound):
        verifier.verify(forged, now=NOW)


def test_wrong_secret_is_refused(mint: Mint, hs_secret: bytes) -> None:
    _refused(
        _verifier(_secret(hs_secret)),
        mint(key=new_hs_secret(), exp=NOW + 60),
        "signature verification failed",
    )


def test_tampered_payload_is_refused(mint: Mint, hs_secret: bytes) -> None:
    header, _, signature = mint({"sub": "u"}, exp=NOW + 60).split(".")
    forged = raw_token({}, {"sub": "admin", "exp": NOW + 60}).split(".")[1]
    _refused(_verifier(_secret(hs_secret)), f"{header}.{forged}.{signature}", "signature verification failed")


def test_ec_key_of_other_curve_is_refused(
    mint: Mint, ec_p256_private_key: ec.EllipticCurvePrivateKey
) -> None:
    # A P-256 key admits ES256 only: an ES384 token finds no key at all.
    verifier = _verifier(_pem(ec_p256_private_key), algorithms=("ES256", "ES384"))
    with pytest.raises(KeyNotFound):
        verifier.verify(mint(alg="ES384", exp=NOW + 60), now=NOW)


def test_kid_selects_key(mint: Mint) -> None:
    first, second = new_hs_secret(), new_hs_secret()
    verifier = _verifier(_secret(first, "k1"), _secret(second, "k2"))
    assert verifier.verify(mint(key=second, headers={"kid": "k2"}, exp=NOW + 60), now=NOW).kid == "k2"
    assert verifier.verify(mint(key=first, headers={"kid": "k1"}, exp=NOW + 60), now=NOW).kid == "k1"
    mismatched = mint(key=second, headers={"kid": "k1"}, exp=NOW + 60)
    _refused(verifier, mismatched, "signature verification failed")


def test_unknown_kid_is_key_not_found(mint: Mint) -> None:
    verifier = _verifier(_secret(new_hs_secret(), "k1"))
    with pytest.raises(KeyNotFound) as caught:
        verifier.verify(mint(headers={"kid": "k9"}, exp=NOW + 60), now=NOW)
    assert (caught.value.reason, caught.value.kid) == ("unknown key id", "k9")


def test_rotation_accepts_old_and_new_keys(mint: Mint) -> None:
    old, new = new_rsa_key(), new_rsa_key()
    document = json.dumps(jwks(public_jwk(old, "2024"), public_jwk(new, "2025"))).encode()
    verifier = _verifier(JwksFile("j.json", document, 1), algorithms=("RS256",))
    for key, kid in ((old, "2024"), (new, "2025")):
        assert (
            verifier.verify(mint(alg="RS256", key=key, headers={"kid": kid}, exp=NOW + 60), now=NOW).kid
            == kid
        )


def test_single_kidless_secret_accepts_any_kid(mint: Mint, hs_secret: bytes) -> None:
    token = mint(headers={"kid": "whatever-the-issuer-sends"}, exp=NOW + 60)
    assert _verifier(_secret(hs_secret)).verify(token, now=NOW).kid == "whatever-the-issuer-sends"


def test_non_string_kid_is_refused(hs_secret: bytes) -> None:
    token = hmac_token({"alg": "HS256", "kid": 7}, {"exp": NOW + 60}, hs_secret)
    _refused(_verifier(_secret(hs_secret)), token, "malformed token header")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listening socket: any attempt to fetch a jku/x5u URL would show up as a connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


def _assert_no_connection(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


def test_embedded_key_headers_are_ignored(mint: Mint, hs_secret: bytes, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    attacker = new_rsa_key()
    headers = {
        "jku": f"http://127.0.0.1:{port}/jwks.json",
        "x5u": f"http://127.0.0.1:{port}/cert.pem",
        "jwk": public_jwk(attacker),
        "x5c": ["MIIB"],
    }
    verifier = _verifier(_pem(new_rsa_key()), algorithms=("RS256",))
    _refused(
        verifier,
        mint(alg="RS256", key=attacker, headers=headers, exp=NOW + 60),
        "signature verification failed",
    )
    # With the configured key, the same headers change nothing either.
    assert _verifier(_secret(hs_secret)).verify(mint(headers=headers, exp=NOW + 60), now=NOW)
    _assert_no_connection(listener)


@pytest.mark.parametrize(
    "header",
    [{"crit": ["b64"], "b64": True}, {"crit": ["exp"], "exp": 1}, {"crit": []}, {"crit": "b64"}],
)
def test_crit_header_is_refused(hs_secret: bytes, header: dict[str, Any]) -> None:
    token = hmac_token({"alg": "HS256", **header}, {"exp": NOW + 60}, hs_secret)
    _refused(_verifier(_secret(hs_secret)), token, "unsupported critical header")


def test_oversized_token_is_refused(hs_secret: bytes) -> None:
    token = hmac_token({"alg": "HS256"}, {"exp": NOW + 60, "pad": "x" * MAX_TOKEN_LENGTH}, hs_secret)
    _refused(_verifier(_secret(hs_secret)), token, "token too large")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "e30.e30.",
        "W10.e30.",  # header is a JSON list
        "eyJhbGciOiJIUzI1NiJ9.!!!.abc",
        "eyJhbGciOiJIUzI1NiJ9.e30.!!!",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9x.e30.",
        "tök.en.x",
    ],
)
def test_malformed_token_is_refused(hs_secret: bytes, token: str) -> None:
    verifier = _verifier(_secret(hs_secret))
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token, now=NOW)
    assert caught.value.reason in {"malformed token", "algorithm not allowed"}


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "not json", '{"exp": 1, "exp": 2}'])
def test_malformed_payload_is_refused(hs_secret: bytes, payload: str) -> None:
    token = hmac_token({"alg": "HS256"}, payload.encode(), hs_secret)
    _refused(_verifier(_secret(hs_secret)), token, "malformed token")


def test_missing_exp_is_refused(mint: Mint, hs_secret: bytes) -> None:
    _refused(_verifier(_secret(hs_secret)), mint(exp=None), "exp claim is missing")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "1900000000"), ("exp", True), ("exp", 10**400), ("exp", math.inf), ("nbf", "0"), ("iat", [1])],
)
def test_non_numeric_time_claim_is_refused(hs_secret: bytes, claim: str, value: Any) -> None:
    payload = {"exp": NOW + 60, claim: value}
    token = hmac_token({"alg": "HS256"}, payload, hs_secret)
    _refused(_verifier(_secret(hs_secret)), token, f"{claim} claim is not a number")


def test_expired_token_is_refused(mint: Mint, hs_secret: bytes) -> None:
    _refused(_verifier(_secret(hs_secret)), mint(iat=NOW - 100, exp=NOW - 1), "token expired")
    _refused(_verifier(_secret(hs_secret)), mint(iat=NOW - 100, exp=NOW), "token expired")


def test_leeway_is_honoured_for_exp(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(_secret(hs_secret), leeway=10.0)
    assert verifier.verify(mint(iat=NOW - 100, exp=NOW - 9), now=NOW)
    _refused(verifier, mint(iat=NOW - 100, exp=NOW - 11), "token expired")


def test_nbf_in_future_is_refused_beyond_leeway(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(_secret(hs_secret), leeway=10.0)
    assert verifier.verify(mint(iat=NOW, nbf=NOW + 9, exp=NOW + 60), now=NOW).nbf == NOW + 9
    _refused(verifier, mint(iat=NOW, nbf=NOW + 11, exp=NOW + 60), "token not yet valid")


def test_iat_in_future_is_refused_beyond_leeway(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(_secret(hs_secret), leeway=10.0)
    assert verifier.verify(mint(iat=NOW + 9, exp=NOW + 60), now=NOW)
    _refused(verifier, mint(iat=NOW + 11, exp=NOW + 60), "token issued in the future")


@pytest.mark.parametrize("aud", ["api", ["other", "web"], ["web"]])
def test_audience_matching_one_configured_is_accepted(mint: Mint, hs_secret: bytes, aud: Any) -> None:
    verifier = _verifier(_secret(hs_secret), audience=("api", "web"))
    assert verifier.verify(mint(aud=aud, exp=NOW + 60), now=NOW).claims["aud"] == aud


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        ("other", "audience mismatch"),
        (["x", "y"], "audience mismatch"),
        ([], "audience mismatch"),
        (None, "audience mismatch"),
        (5, "aud claim has the wrong type"),
        (["api", 5], "aud claim has the wrong type"),
    ],
)
def test_wrong_audience_is_refused(mint: Mint, hs_secret: bytes, aud: Any, reason: str) -> None:
    _refused(_verifier(_secret(hs_secret), audience=("api",)), mint(aud=aud, exp=NOW + 60), reason)


def test_audience_unchecked_when_not_configured(mint: Mint, hs_secret: bytes) -> None:
    assert _verifier(_secret(hs_secret)).verify(mint(aud="anyone", exp=NOW + 60), now=NOW)


@pytest.mark.parametrize("iss", ["https://evil", "https://idp/", None, 5, ["https://idp"]])
def test_wrong_issuer_is_refused(mint: Mint, hs_secret: bytes, iss: Any) -> None:
    verifier = _verifier(_secret(hs_secret), issuer="https://idp")
    assert verifier.verify(mint(iss="https://idp", exp=NOW + 60), now=NOW)
    payload = {"exp": NOW + 60} if iss is None else {"exp": NOW + 60, "iss": iss}
    refusal = _refused(verifier, hmac_token({"alg": "HS256"}, payload, hs_secret), "issuer mismatch")
    assert isinstance(refusal, IssuerMismatch)


def _oidc_remote(key: ed25519.Ed25519PrivateKey, issuer: str) -> StaticRemote:
    return StaticRemote(entries_from_jwks(jwks(public_jwk(key, "k")), frozenset({"EdDSA"}), issuer=issuer))


def test_oidc_key_pins_its_issuer(mint: Mint, ed25519_private_key: ed25519.Ed25519PrivateKey) -> None:
    verifier = _verifier(algorithms=("EdDSA",), remotes=(_oidc_remote(ed25519_private_key, "https://a"),))
    good = mint(alg="EdDSA", headers={"kid": "k"}, iss="https://a", exp=NOW + 60)
    assert verifier.verify(good, now=NOW).claims["iss"] == "https://a"
    _refused(
        verifier, mint(alg="EdDSA", headers={"kid": "k"}, iss="https://b", exp=NOW + 60), "issuer mismatch"
    )


def test_issuers_sharing_a_key_each_accept_their_own(
    mint: Mint, ed25519_private_key: ed25519.Ed25519PrivateKey
) -> None:
    remotes = (_oidc_remote(ed25519_private_key, "https://a"), _oidc_remote(ed25519_private_key, "https://b"))
    verifier = _verifier(algorithms=("EdDSA",), remotes=remotes)
    for iss in ("https://a", "https://b"):
        assert verifier.verify(mint(alg="EdDSA", headers={"kid": "k"}, iss=iss, exp=NOW + 60), now=NOW)
    _refused(
        verifier, mint(alg="EdDSA", headers={"kid": "k"}, iss="https://c", exp=NOW + 60), "issuer mismatch"
    )


def test_only_an_issuer_mismatch_moves_on_to_the_next_key(
    mint: Mint, ed25519_private_key: ed25519.Ed25519PrivateKey
) -> None:
    # The key is pinned to https://a first: a wrong audience there is final, not a reason to try the
    # copy pinned to https://b (which would answer "issuer mismatch" and hide the real refusal).
    remotes = (_oidc_remote(ed25519_private_key, "https://a"), _oidc_remote(ed25519_private_key, "https://b"))
    verifier = _verifier(algorithms=("EdDSA",), remotes=remotes, audience=("api",))
    for iss in ("https://a", "https://b"):
        token = mint(alg="EdDSA", headers={"kid": "k"}, iss=iss, aud="web", exp=NOW + 60)
        refusal = _refused(verifier, token, "audience mismatch")
        assert not isinstance(refusal, IssuerMismatch)


async def test_unknown_kid_verifies_after_remote_refresh(
    mint: Mint, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    remote = StaticRemote()
    verifier = _verifier(algorithms=("RS256",), remotes=(remote,))
    ring_key = KeyEntry("new", "RSA", rsa_private_key.public_key(), frozenset({"RS256"}))
    token = mint(alg="RS256", headers={"kid": "new"}, exp=NOW + 60)
    with pytest.raises(KeyNotFound):
        verifier.verify(token, now=NOW)
    remote.next_entries = (ring_key,)
    assert await remote.refresh_for_unknown_kid("new")
    assert verifier.verify(token, now=NOW).kid == "new"


def test_no_key_for_algorithm_is_key_not_found(mint: Mint, rsa_private_key: rsa.RSAPrivateKey) -> None:
    verifier = _verifier(_pem(rsa_private_key), algorithms=("RS256", "ES256"))
    with pytest.raises(KeyNotFound) as caught:
        verifier.verify(mint(alg="ES256", exp=NOW + 60), now=NOW)
    assert (caught.value.reason, caught.value.kid) == ("no key for algorithm", None)


def test_reasons_never_echo_token_or_key(mint: Mint, hs_secret: bytes) -> None:
    verifier = _verifier(_secret(hs_secret), audience=("api",), issuer="https://idp")
    tokens = [
        mint(key=new_hs_secret(), exp=NOW + 60),
        mint(exp=NOW - 100, iat=NOW - 200),
        mint(aud="evil-aud-value", iss="https://idp", exp=NOW + 60),
        mint(iss="evil-iss-value", exp=NOW + 60),
    ]
    for token in tokens:
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(token, now=NOW)
        message = str(caught.value)
        assert "evil" not in message and hs_secret.decode() not in message
        assert not any(part and part in message for part in token.split("."))


def test_padded_segments_are_accepted(hs_secret: bytes) -> None:
    # Some issuers (AWS ALB) pad base64url segments with "="; the signature covers the padded form.
    def padded(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()

    signing_input = f"{padded({'alg': 'HS256', 'kid': 'ab'})}.{padded({'exp': NOW + 60, 's': 'x'})}"
    assert "=" in signing_input
    signature = hmac.new(hs_secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).decode()}"
    assert _verifier(_secret(hs_secret)).verify(token, now=NOW).kid == "ab"
