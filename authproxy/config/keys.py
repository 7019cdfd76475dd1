"""`jwt.algorithms` and `jwt.keys` -> checked values: key files are read at load, PEMs and JWKS documents
are checked, and algorithms and keys are checked against each other, so a key that can never verify,
or an HS*/RS* confusion, is refused before the proxy starts.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    Section,
    model_keys,
    read_bool,
    read_duration,
    read_list,
    read_section,
    read_str,
)
from authproxy.config.model import JwksFile, JwksUrl, KeySource, OidcIssuer, PublicKeyFile, SecretKey
from authproxy.config.source import Node
from authproxy.config.values import check_fetch_url
from authproxy.standards.jose import ALGORITHMS, HMAC_ALGORITHMS, key_algorithms

__all__ = [
    "check_families",
    "read_algorithms",
    "read_keys",
]

_SOURCES = ("secret", "secret_file", "public_key_file", "jwks_file", "jwks_url", "oidc_issuer")
# The key source forms (one model each, see model.py KeySource) are named by their key, not a field.
_REMOTE = model_keys(JwksUrl, skip=("url",))  # what a remote source (jwks_url, oidc_issuer) may add
_MODIFIERS: dict[str, tuple[str, ...]] = {
    "secret": ("kid",),
    "secret_file": ("kid",),
    "public_key_file": ("kid",),
    "jwks_file": (),
    "jwks_url": _REMOTE,
    "oidc_issuer": _REMOTE,
}
_ITEM_KEYS = (*_SOURCES, "kid", *_REMOTE)
_MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: at least the hash size; 32 bytes for HS256
_MAX_KEY_FILE = 1 << 20  # key files are small; a bigger one is a wrong path
_REMOTE_DEFAULT = JwksUrl("", 0)  # the defaults of a remote source (an OidcIssuer's are the same)


def read_algorithms(report: Report, path: str, node: Node) -> tuple[str, ...]:
    items = read_list(report, path, node)
    checks = Checks()
    algorithms: list[str] = []
    for i, item in enumerate(items):
        label = f"{path}[{i}]"
        name = checks.attempt(label, lambda: _algorithm(report, label, item), None)  # noqa: B023
        if name is None:
            continue
        if name in algorithms:
            # An error, but the list stays usable, so each key is still checked against it.
            report.error(item.line, f"{label}: {name} is listed twice")
        else:
            algorithms.append(name)
    checks.done()
    return tuple(algorithms)


def _algorithm(report: Report, label: str, node: Node) -> str:
    name = read_str(report, label, node)
    if name.lower() == "none":
        raise report.invalid(node.line, f"{label}: 'none' is refused: it would accept unsigned tokens")
    if name not in ALGORITHMS:
        close = [a for a in ALGORITHMS if a.lower() == name.lower()]
        hint = f" (did you mean {close[0]}?)" if close else f"; use one of {', '.join(ALGORITHMS)}"
        raise report.invalid(node.line, f"{label}: unknown algorithm '{name}'{hint}")
    return name


def read_keys(
    report: Report, path: str, node: Node, base_dir: str, algorithms: tuple[str, ...] | None
) -> tuple[KeySource, ...]:
    """Every item of `jwt.keys`; `algorithms` (None when invalid) enables the per-key fit checks."""
    items = read_list(report, path, node)
    checks = Checks()
    keys: list[KeySource] = []
    kids: dict[str, str] = {}
    for i, item in enumerate(items):
        label = f"{path}[{i}]"
        key = checks.attempt(label, lambda: _read_item(report, label, item, base_dir, algorithms), None)  # noqa: B023
        if key is None:
            continue
        kid = key.kid if isinstance(key, SecretKey | PublicKeyFile) else None
        if kid is not None and kid in kids:
            report.error(key.line, f"{label}.kid: '{kid}' is already used by {kids[kid]}")
        elif kid is not None:
            kids[kid] = label
        keys.append(key)
    checks.done()
    return tuple(keys)


def check_families(
    report: Report, path: str, line: int, algorithms: tuple[str, ...], keys: tuple[KeySource, ...]
) -> None:
    """Algorithms against key kinds; reported at `jwt.algorithms`, which is what the user must change."""
    hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
    asymmetric = [a for a in algorithms if a not in HMAC_ALGORITHMS]
    public = [k for k in keys if not isinstance(k, SecretKey)]
    if hmac and public:
        # An HMAC verifier handed a public key's bytes would accept tokens anyone can sign.
        report.error(
            line,
            f"{path}: {', '.join(hmac)} cannot be allowed beside a public key source (line "
            f"{public[0].line}): split HMAC and public-key verification into separate proxies",
        )
    if asymmetric and not public:
        report.error(
            line,
            f"{path}: {', '.join(asymmetric)} needs a public key, jwks or oidc_issuer; "
            "only HMAC secrets are configured, so no token could ever verify",
        )


def _read_item(
    report: Report, path: str, node: Node, base_dir: str, algorithms: tuple[str, ...] | None
) -> KeySource:
    item = read_section(report, path, node.line, node, _ITEM_KEYS)
    present = [name for name in _SOURCES if name in item.entries]
    if len(present) != 1:
        found = f"has {' and '.join(present)}" if present else "has no key source"
        raise report.invalid(node.line, f"{path}: {found}; give exactly one of {', '.join(_SOURCES)}")
    source = present[0]
    stray = [name for name in item.entries if name != source and name not in _MODIFIERS[source]]
    for name in stray:
        report.error(item.entries[name].line, f"{path}.{name}: does not apply to {source}")
    key: KeySource
    if source in ("secret", "secret_file"):
        key = _read_secret(report, item, source, base_dir, algorithms)
    elif source == "public_key_file":
        key = _read_public_key(report, item, base_dir, algorithms)
    elif source == "jwks_file":
        key = _read_jwks_file(report, item, base_dir)
    else:
        key = _read_remote(report, item, source)
    if stray:
        raise Invalid  # reported above; the source itself was still checked
    return key


def _read_secret(
    report: Report, item: Section, source: str, base_dir: str, algorithms: tuple[str, ...] | None
) -> SecretKey:
    label = item.sub(source)
    checks = Checks()
    # The kid first: its problem is reported even when the source's stops the reading.
    kid = checks.key(item, "kid", lambda p, n: read_str(report, p, n), None)
    text = read_str(report, label, item.entries[source])
    if source == "secret":
        secret, origin = text.encode(), "secret"
    else:
        origin, data = _read_file(report, label, item.line, text, base_dir)
        # One line ending (as `echo` or an editor adds it); anything before it is the secret's own.
        secret = data[:-2] if data.endswith(b"\r\n") else data.removesuffix(b"\n")
        if not secret:
            raise report.invalid(item.line, f"{label}: {origin} is empty")
    if secret.lstrip().startswith(b"-----BEGIN"):
        raise report.invalid(item.line, f"{label}: holds a PEM key, not an HMAC secret; use public_key_file")
    if algorithms is not None and HMAC_ALGORITHMS.isdisjoint(algorithms):
        report.warn(item.line, f"{item.path}: no HS* algorithm is configured, so this secret is never used")
    elif len(secret) < _MIN_SECRET_BYTES:
        report.warn(item.line, f"{item.path}: the secret is shorter than 32 bytes, too weak for HS256")
    checks.done()  # a bad kid, reported
    return SecretKey(secret, item.line, origin, kid)


def _read_public_key(
    report: Report, item: Section, base_dir: str, algorithms: tuple[str, ...] | None
) -> PublicKeyFile:
    label = item.sub("public_key_file")
    checks = Checks()
    kid = checks.key(item, "kid", lambda p, n: read_str(report, p, n), None)  # first, as for a secret
    text = read_str(report, label, item.entries["public_key_file"])
    path, pem = _read_file(report, label, item.line, text, base_dir)
    try:
        kind, verifies = _public_key_kind(pem)
    except ValueError as bad:
        raise report.invalid(item.line, f"{label}: {path} {bad}") from None
    if algorithms is not None and verifies.isdisjoint(algorithms):
        fits = ", ".join(sorted(verifies)) or "nothing authproxy supports"
        raise report.invalid(
            item.line,
            f"{label}: {path} is {kind}, which verifies {fits}; "
            f"jwt.algorithms allows only {', '.join(algorithms)}",
        )
    checks.done()  # a bad kid, reported
    return PublicKeyFile(path, pem, item.line, kid)


def _public_key_kind(pem: bytes) -> tuple[str, frozenset[str]]:
    """(what the key is, the algorithms it can verify); ValueError(message) when it is not usable."""
    if b"PRIVATE KEY-----" in pem:
        raise ValueError("holds a private key; give the public key (never ship the private half)")
    if b"-----BEGIN CERTIFICATE-----" in pem:
        raise ValueError("is a certificate; give the PEM public key it contains")
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("is not a PEM public key") from None
    try:
        kty, algorithms = key_algorithms(key)
    except ValueError:
        raise ValueError("is not an RSA, EC or Ed25519 public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}", algorithms
    return ("an RSA key" if kty == "RSA" else "an Ed25519 key"), algorithms


def _read_jwks_file(report: Report, item: Section, base_dir: str) -> JwksFile:
    label = item.sub("jwks_file")
    text = read_str(report, label, item.entries["jwks_file"])
    path, document = _read_file(report, label, item.line, text, base_dir)
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as bad:
        raise report.invalid(
            item.line, f"{label}: {path} is not JSON: {bad.msg} at line {bad.lineno}"
        ) from None
    except UnicodeDecodeError:
        raise report.invalid(item.line, f"{label}: {path} is not JSON: not UTF-8 text") from None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise report.invalid(
            item.line, f"{label}: {path} is not a JWKS: expected a JSON object with a 'keys' list"
        )
    if not keys:
        raise report.invalid(item.line, f"{label}: {path} has no keys")
    return JwksFile(path, document, item.line)


def _read_remote(report: Report, item: Section, source: str) -> JwksUrl | OidcIssuer:
    label = item.sub(source)
    checks = Checks()
    url = checks.attempt(source, lambda: read_str(report, label, item.entries[source]), "")

    def interval(path: str, node: Node) -> float:
        return read_duration(report, path, node, positive=True)

    d = _REMOTE_DEFAULT
    refresh = checks.key(item, "refresh_interval", interval, d.refresh_interval)
    insecure = checks.key(
        item, "allow_insecure_http", lambda p, n: read_bool(report, p, n), d.allow_insecure_http
    )
    unknown_kid = checks.key(item, "unknown_kid_refresh_interval", interval, d.unknown_kid_refresh_interval)
    checks.done()
    try:
        check_fetch_url(url, allow_insecure_http=insecure, issuer=source == "oidc_issuer")
    except ValueError as bad:
        raise report.invalid(item.entries[source].line, f"{label}: {bad}") from None
    if source == "jwks_url":
        return JwksUrl(url, item.line, refresh, insecure, unknown_kid)
    return OidcIssuer(url, item.line, refresh, insecure, unknown_kid)


def _read_file(report: Report, label: str, line: int, raw: str, base_dir: str) -> tuple[str, bytes]:
    """Read a key file named relative to the config file's directory; returns (path as resolved, bytes)."""
    path = os.path.join(base_dir, raw)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as err:
        raise report.invalid(line, f"{label}: cannot read {path}: {err.strerror or err}") from None
    if len(data) > _MAX_KEY_FILE:
        raise report.invalid(line, f"{label}: {path} is larger than 1 MiB; is it the right file?")
    return path, data
