"""Fixtures for the config loader tests: a scratch config directory and real key files."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tests.rigs.configdir import ConfigDir, KeyFiles

# The smallest valid head of a config: tests append sections from line 8 on.
_HEAD = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [HS256]
  keys:
    - secret: 0123456789abcdef0123456789abcdef
  audience: api
"""


@pytest.fixture
def head() -> str:
    return _HEAD


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigDir:
    monkeypatch.chdir(tmp_path)
    return ConfigDir(tmp_path)


PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)


def _public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "authproxy test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    root = tmp_path_factory.mktemp("keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pems = {
        "rsa.pem": _public_pem(rsa_key),
        "ec256.pem": _public_pem(ec.generate_private_key(ec.SECP256R1())),
        "ec384.pem": _public_pem(ec.generate_private_key(ec.SECP384R1())),
        "ec256k1.pem": _public_pem(ec.generate_private_key(ec.SECP256K1())),
        "ed25519.pem": _public_pem(ed25519.Ed25519PrivateKey.generate()),
        "ed448.pem": _public_pem(ed448.Ed448PrivateKey.generate()),
        "rsa-private.pem": rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        "garbage.pem": b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    }
    pems["cert.pem"] = _certificate(rsa_key)
    for name, data in pems.items():
        (root / name).write_bytes(data)
    return KeyFiles(root)
