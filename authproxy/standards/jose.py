"""The JOSE tables: which algorithms exist in each family, and which key (type and curve) verifies which.

One source for config (checking keys and `jwt.algorithms` at load), auth (admitting keys at run time) and
the token and key helpers of the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "ALGORITHMS",
    "EC_CURVES",
    "EC_CURVE_ALGORITHMS",
    "EDDSA",
    "HMAC_ALGORITHMS",
    "OKP_ALGORITHMS",
    "RSA_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "KeyKind",
    "curve_name",
    "key_algorithms",
    "signing_key_kind",
]

KeyKind = Literal["rsa", "ec", "ed25519"]

EDDSA = "EdDSA"
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
# One algorithm per curve (JWK `crv` name): ES384 over a P-256 key is never accepted.
EC_CURVE_ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
)
OKP_ALGORITHMS: Mapping[str, str] = MappingProxyType({"Ed25519": EDDSA})
# The cryptography curve of each JWK curve name.
EC_CURVES: Mapping[str, type[ec.EllipticCurve]] = MappingProxyType(
    {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
)
SUPPORTED_ALGORITHMS = (
    HMAC_ALGORITHMS
    | RSA_ALGORITHMS
    | frozenset(EC_CURVE_ALGORITHMS.values())
    | frozenset(OKP_ALGORITHMS.values())
)
# Every algorithm, in the order messages list them.
ALGORITHMS: tuple[str, ...] = (
    *sorted(HMAC_ALGORITHMS),
    *sorted(RSA_ALGORITHMS),
    *sorted(EC_CURVE_ALGORITHMS.values()),
    EDDSA,
)
_CURVE_BY_CRYPTOGRAPHY_NAME = {curve().name: name for name, curve in EC_CURVES.items()}


def curve_name(curve: ec.EllipticCurve) -> str | None:
    """The JWK name of a cryptography curve (secp256r1 -> P-256); None for a curve JOSE does not use here."""
    return _CURVE_BY_CRYPTOGRAPHY_NAME.get(curve.name)


def key_algorithms(key: object) -> tuple[str, frozenset[str]]:
    """(JWK key type, the algorithms it signs or verifies) of a public or private RSA, EC or Ed25519 key.

    An EC key on a curve outside the table admits no algorithm; any other key raises ValueError.
    """
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA", RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        crv = curve_name(key.curve)
        return "EC", frozenset({EC_CURVE_ALGORITHMS[crv]} if crv is not None else ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "OKP", frozenset({EDDSA})
    raise ValueError("the key is not RSA, EC or Ed25519")


def signing_key_kind(alg: str) -> tuple[KeyKind, str]:
    """(key kind, JWK curve) that signs an asymmetric `alg`; ValueError for HMAC or an unknown name."""
    if alg in RSA_ALGORITHMS:
        return "rsa", "P-256"
    if alg == EDDSA:
        return "ed25519", "P-256"
    for crv, curve_alg in EC_CURVE_ALGORITHMS.items():
        if curve_alg == alg:
            return "ec", crv
    raise ValueError(f"{alg} is not an asymmetric signing algorithm")
