"""The JOSE tables (authproxy/standards/jose.py): which key verifies which algorithm, read by the config
loader, the key ring and the token helpers alike."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from authproxy.auth.mint import default_algorithm, generate_private_key
from authproxy.standards.jose import (
    ALGORITHMS,
    EC_CURVE_ALGORITHMS,
    RSA_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    curve_name,
    key_algorithms,
    signing_key_kind,
)
from tests.rigs.keys import ALL_ALGORITHMS


def test_every_algorithm_is_listed_once_and_supported() -> None:
    assert len(ALGORITHMS) == len(set(ALGORITHMS))
    assert set(ALGORITHMS) == SUPPORTED_ALGORITHMS == set(ALL_ALGORITHMS)


@pytest.mark.parametrize(("curve", "name"), [(ec.SECP256R1(), "P-256"), (ec.SECP384R1(), "P-384")])
def test_curve_names_are_the_jwk_names(curve: ec.EllipticCurve, name: str) -> None:
    assert curve_name(curve) == name


def test_a_curve_outside_the_table_has_no_name_and_admits_no_algorithm() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    assert curve_name(key.curve) is None
    assert key_algorithms(key.public_key()) == ("EC", frozenset())


@pytest.mark.parametrize("crv", sorted(EC_CURVE_ALGORITHMS))
def test_an_ec_key_admits_exactly_the_algorithm_of_its_curve(crv: str) -> None:
    key = generate_private_key("ec", curve=crv)
    assert (
        key_algorithms(key)
        == key_algorithms(key.public_key())
        == ("EC", frozenset({EC_CURVE_ALGORITHMS[crv]}))
    )
    assert default_algorithm(key) == EC_CURVE_ALGORITHMS[crv]
    assert signing_key_kind(EC_CURVE_ALGORITHMS[crv]) == ("ec", crv)


def test_rsa_and_ed25519_keys() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert key_algorithms(rsa_key.public_key()) == ("RSA", RSA_ALGORITHMS)
    assert {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} == RSA_ALGORITHMS
    assert key_algorithms(ed25519.Ed25519PrivateKey.generate()) == ("OKP", frozenset({"EdDSA"}))
    assert signing_key_kind("PS384")[0] == "rsa"
    assert signing_key_kind("EdDSA")[0] == "ed25519"


def test_other_keys_and_hmac_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not RSA, EC or Ed25519"):
        key_algorithms(ed448.Ed448PrivateKey.generate())
    with pytest.raises(ValueError, match="not an asymmetric signing algorithm"):
        signing_key_kind("HS256")
