"""SSLContexts from certificate files: the server side of a listener and the client side towards an upstream.

Both start from Python's secure defaults (ssl.create_default_context) and narrow them: TLS 1.2 or newer,
and for TLS 1.2 only forward-secret AEAD suites (TLS 1.3 suites are all AEAD). Building a context reads the
files, so it runs at config load (and again on every reload); a bad file is a TlsFileError naming it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Literal

from cryptography import x509

__all__ = [
    "TLS12_CIPHERS",
    "TlsFileError",
    "TlsFileErrors",
    "client_context",
    "peer_subject",
    "server_context",
]

# ECDHE/DHE key exchange, AES-GCM or ChaCha20-Poly1305: no CBC, no SHA-1 MACs, no static RSA.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


class TlsFileError(ValueError):
    """A certificate, key or CA file that cannot be used; `field` is the setting that named it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class TlsFileErrors(ValueError):
    """Every unusable file of one context (say, a key that does not match and a CA file that is missing)."""

    def __init__(self, errors: list[TlsFileError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in errors))


def _narrow(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def _load_chain(context: ssl.SSLContext, fields: tuple[str, str], cert_file: str, key_file: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as missing:
        name = fields[0] if missing.filename in (None, cert_file) else fields[1]
        raise TlsFileError(name, f"cannot read {missing.filename or cert_file}") from missing
    except ssl.SSLError as bad:
        # OpenSSL cannot tell a wrong key from a broken PEM apart reliably: name both files.
        raise TlsFileError(
            fields[0], f"{cert_file} and {key_file} are not a usable certificate and key ({bad.reason})"
        ) from bad
    except OSError as bad:
        raise TlsFileError(fields[0], f"cannot read {cert_file} or {key_file}: {bad.strerror}") from bad


def _load_cas(context: ssl.SSLContext, field: str, ca_file: str) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as bad:
        raise TlsFileError(field, f"{ca_file} holds no usable CA certificate ({bad.reason})") from bad
    except OSError as bad:
        raise TlsFileError(field, f"cannot read {ca_file}: {bad.strerror}") from bad


def server_context(
    prefix: str,
    cert_file: str,
    key_file: str,
    client_ca_file: str | None = None,
    client_auth: Literal["required", "optional"] = "required",
) -> ssl.SSLContext:
    """A listener's context; with `client_ca_file`, client certificates are verified against those CAs."""
    context = _narrow(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
    problems = _attempt(
        lambda: _load_chain(context, (f"{prefix}.cert_file", f"{prefix}.key_file"), cert_file, key_file)
    )
    if client_ca_file is not None:
        problems += _attempt(lambda: _load_cas(context, f"{prefix}.client_ca_file", client_ca_file))
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    if problems:
        raise TlsFileErrors(problems)
    return context


def client_context(
    prefix: str,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """An upstream's context: its certificate is verified (hostname included) against `ca_file` or the
    system's CAs; with `cert_file`/`key_file` we present a client certificate (mTLS)."""
    context = _narrow(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))
    problems: list[TlsFileError] = []
    if ca_file is not None:
        # Only the configured CAs: an upstream on a private CA must not also accept public ones.
        context = _narrow(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        problems += _attempt(lambda: _load_cas(context, f"{prefix}.ca_file", ca_file))
    if cert_file is not None and key_file is not None:
        fields = (f"{prefix}.cert_file", f"{prefix}.key_file")
        problems += _attempt(lambda: _load_chain(context, fields, cert_file, key_file))
    if problems:
        raise TlsFileErrors(problems)
    return context


def _attempt(load: Callable[[], None]) -> list[TlsFileError]:
    """[] when `load` succeeds, else its TlsFileError: each file is checked, so all are reported at once."""
    try:
        load()
    except TlsFileError as bad:
        return [bad]
    return []


def peer_subject(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The verified client certificate's subject as an RFC 4514 string (`CN=svc,O=example`), or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
