"""The TLS certificate of one bench run: a self-signed EC P-256 certificate for 127.0.0.1, made on first
use, that nginx and authproxy both serve, and the client context that trusts it for the status checks.
wrk does not verify certificates; every connection stays on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["BenchTls", "bench_tls", "client_context"]


@dataclass(frozen=True, slots=True)
class BenchTls:
    cert_file: Path
    key_file: Path
    context: ssl.SSLContext  # trusts cert_file


_made: list[BenchTls] = []


def bench_tls(folder: Path) -> BenchTls:
    """The run's certificate, written to `folder` the first time it is asked for."""
    if _made:
        return _made[0]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authproxy bench")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "bench-tls.crt", folder / "bench-tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    _made.append(BenchTls(cert_file, key_file, ssl.create_default_context(cafile=str(cert_file))))
    return _made[0]


def client_context() -> ssl.SSLContext | None:
    """The context that trusts the run's certificate, once there is one (None: Python's default)."""
    return _made[0].context if _made else None
