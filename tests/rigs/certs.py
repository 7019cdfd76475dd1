"""Real X.509 material for TLS tests (`from certutil import ...`): a CA, server and client certificates
signed by it, written as PEM files. Generated with cryptography; EC P-256 keys keep generation fast.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as PEM files (the chain file holds the leaf only)."""

    cert_file: Path
    key_file: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_file: Path  # the CA bundle a verifier loads

    def issue(
        self,
        directory: Path,
        common_name: str,
        *,
        server: bool = True,
        expired: bool = False,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        organization: str = "authproxy tests",
    ) -> Issued:
        """A leaf for `common_name`: a server certificate for `hosts`, or a client certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - 10 * _DAY, now - _DAY) if expired else (now - _DAY, now + 30 * _DAY)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = directory / f"{self.name}-{common_name}{'-expired' if expired else ''}"
        return _write(stem, certificate, key)


def new_authority(directory: Path, name: str = "ca") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"authproxy test {name}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 365 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    issued = _write(directory / name, certificate, key)
    return Authority(name, key, certificate, issued.cert_file)


def _write(stem: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_file, key_file, certificate)


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Authority  # the CA the proxy trusts (listener clients, upstream server)
    other_ca: Authority  # a CA nobody trusts: its certificates must be refused
    server: Issued  # 127.0.0.1 / localhost, from ca
    client: Issued  # a client certificate from ca
    wrong_client: Issued  # a client certificate from other_ca
    expired_client: Issued  # from ca, expired yesterday

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca, other = new_authority(directory, "ca"), new_authority(directory, "other-ca")
        return cls(
            directory,
            ca,
            other,
            ca.issue(directory, "proxy"),
            ca.issue(directory, "svc-agent", server=False),
            other.issue(directory, "svc-intruder", server=False),
            ca.issue(directory, "svc-old", server=False, expired=True),
        )
