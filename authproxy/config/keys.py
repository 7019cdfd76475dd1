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
    Report,
    Section,
    model_keys,
    or_none,
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


def read_algorithms(report: Report, path: str, node: Node) -> tuple[str, ...] | None:
    items = or_none(read_list, report, path, node)
    if items is None:
        return None
    algorithms: list[str] = []
    ok = True
    for i, item in enumerate(items):
        name = or_none(read_str, report, f"{path}[{i}]", item)
        if name is None:
            ok = False
        elif name.lower() == "none":
            report.error(item.line, f"{path}[{i}]: 'none' is refused: it would accept unsigned tokens")
            ok = False
        elif name not in ALGORITHMS:
            close = [a for a in ALGORITHMS if a.lower() == name.lower()]
            hint = f" (did you mean {close[0]}?)" if close else f"; use one of {', '.join(ALGORITHMS)}"
            report.error(item.line, f"{path}[{i}]: unknown algorithm '{name}'{hint}")
            ok = False
        elif name in algorithms:
            report.error(item.line, f"{path}[{i}]: {name} is listed twice")
        else:
            algorithms.append(name)
    return tuple(algorithms) if ok else None


def read_keys(
    report: Report, path: str, node: Node, base_dir: str, algorithms: tuple[str, ...] | None
) -> tuple[KeySource, ...] | None:
    """Every item of `jwt.keys`; `algorithms` (None when invalid) enables the per-key fit checks."""
    items = or_none(read_list, report, path, node)
    if items is None:
        return None
    keys: list[KeySource] = []
    kids: dict[str, str] = {}
    for i, item in enumerate(items):
        key = _read_item(report, f"{path}[{i}]", item, base_dir, algorithms)
        if key is None:
            continue
        kid = key.kid if isinstance(key, SecretKey | PublicKeyFile) else None
        if kid is not None and kid in kids:
            report.error(key.line, f"{path}[{i}].kid: '{kid}' is already used by {kids[kid]}")
        elif kid is not None:
            kids[kid] = f"{path}[{i}]"
        keys.append(key)
    return tuple(keys) if len(keys) == len(items) else None


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
) -> KeySource | None:
    item = or_none(read_section, report, path, node.line, node, _ITEM_KEYS)
    if item is None:
        return None
    present = [name for name in _SOURCES if name in item.entries]
    if len(present) != 1:
        found = f"has {' and '.join(present)}" if present else "has no key source"
        report.error(node.line, f"{path}: {found}; give exactly one of {', '.join(_SOURCES)}")
        return None
    source = present[0]
    stray = [name for name in item.entries if name != source and name not in _MODIFIERS[source]]
    for name in stray:
        report.error(item.entries[name].line, f"{path}.{name}: does not apply to {source}")
    key: KeySource | None
    if source in ("secret", "secret_file"):
        key = _read_secret(report, item, source, base_dir, algorithms)
    elif source == "public_key_file":
        key = _read_public_key(report, item, base_dir, algorithms)
    elif source == "jwks_file":
        key = _read_jwks_file(report, item, base_dir)
    else:
        key = _read_remote(report, item, source)
    return None if stray else key


def _kid(report: Report, item: Section) -> tuple[bool, str | None]:
    node = item.get("kid")
    if node is None:
        return True, None
    kid = or_none(read_str, report, item.sub("kid"), node)
    return kid is not None, kid


def _read_secret(
    report: Report, item: Section, source: str, base_dir: str, algorithms: tuple[str, ...] | None
) -> SecretKey | None:
    label = item.sub(source)
    text = or_none(read_str, report, label, item.entries[source])
    kid_ok, kid = _kid(report, item)
    if text is None:
        return None
    if source == "secret":
        secret, origin = text.encode(), "secret"
    else:
        read = _read_file(report, label, item.line, text, base_dir)
        if read is None:
            return None
        origin, data = read
        # One line ending (as `echo` or an editor adds it); anything before it is the secret's own.
        secret = data[:-2] if data.endswith(b"\r\n") else data.removesuffix(b"\n")
        if not secret:
            report.error(item.line, f"{label}: {origin} is empty")
            return None
    if secret.lstrip().startswith(b"-----BEGIN"):
        report.error(item.line, f"{label}: holds a PEM key, not an HMAC secret; use public_key_file")
        return None
    if algorithms is not None and HMAC_ALGORITHMS.isdisjoint(algorithms):
        report.warn(item.line, f"{item.path}: no HS* algorithm is configured, so this secret is never used")
    elif len(secret) < _MIN_SECRET_BYTES:
        report.warn(item.line, f"{item.path}: the secret is shorter than 32 bytes, too weak for HS256")
    return SecretKey(secret, item.line, origin, kid) if kid_ok else None


def _read_public_key(
    report: Report, item: Section, base_dir: str, algorithms: tuple[str, ...] | None
) -> PublicKeyFile | None:
    label = item.sub("public_key_file")
    text = or_none(read_str, report, label, item.entries["public_key_file"])
    kid_ok, kid = _kid(report, item)
    read = _read_file(report, label, item.line, text, base_dir) if text is not None else None
    if read is None:
        return None
    path, pem = read
    try:
        kind, verifies = _public_key_kind(pem)
    except ValueError as bad:
        report.error(item.line, f"{label}: {path} {bad}")
        return None
    if algorithms is not None and verifies.isdisjoint(algorithms):
        fits = ", ".join(sorted(verifies)) or "nothing authproxy supports"
        report.error(
            item.line,
            f"{label}: {path} is {kind}, which verifies {fits}; "
            f"jwt.algorithms allows only {', '.join(algorithms)}",
        )
        return None
    return PublicKeyFile(path, pem, item.line, kid) if kid_ok else None


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


def _read_jwks_file(report: Report, item: Section, base_dir: str) -> JwksFile | None:
    label = item.sub("jwks_file")
    text = or_none(read_str, report, label, item.entries["jwks_file"])
    read = _read_file(report, label, item.line, text, base_dir) if text is not None else None
    if read is None:
        return None
    path, document = read
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as bad:
        report.error(item.line, f"{label}: {path} is not JSON: {bad.msg} at line {bad.lineno}")
        return None
    except UnicodeDecodeError:
        report.error(item.line, f"{label}: {path} is not JSON: not UTF-8 text")
        return None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        report.error(item.line, f"{label}: {path} is not a JWKS: expected a JSON object with a 'keys' list")
        return None
    if not keys:
        report.error(item.line, f"{label}: {path} has no keys")
        return None
    return JwksFile(path, document, item.line)


def _read_remote(report: Report, item: Section, source: str) -> JwksUrl | OidcIssuer | None:
    label = item.sub(source)
    url = or_none(read_str, report, label, item.entries[source])
    interval: float | None = 300.0
    if (node := item.get("refresh_interval")) is not None:
        interval = or_none(read_duration, report, item.sub("refresh_interval"), node, positive=True)
    insecure: bool | None = False
    if (node := item.get("allow_insecure_http")) is not None:
        insecure = or_none(read_bool, report, item.sub("allow_insecure_http"), node)
    unknown_kid: float | None = 10.0
    if (node := item.get("unknown_kid_refresh_interval")) is not None:
        unknown_kid = or_none(
            read_duration, report, item.sub("unknown_kid_refresh_interval"), node, positive=True
        )
    if url is None or interval is None or insecure is None or unknown_kid is None:
        return None
    try:
        check_fetch_url(url, allow_insecure_http=insecure, issuer=source == "oidc_issuer")
    except ValueError as bad:
        report.error(item.entries[source].line, f"{label}: {bad}")
        return None
    if source == "jwks_url":
        return JwksUrl(url, item.line, interval, insecure, unknown_kid)
    return OidcIssuer(url, item.line, interval, insecure, unknown_kid)


def _read_file(report: Report, label: str, line: int, raw: str, base_dir: str) -> tuple[str, bytes] | None:
    """Read a key file named relative to the config file's directory; returns (path as resolved, bytes)."""
    path = os.path.join(base_dir, raw)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as err:
        report.error(line, f"{label}: cannot read {path}: {err.strerror or err}")
        return None
    if len(data) > _MAX_KEY_FILE:
        report.error(line, f"{label}: {path} is larger than 1 MiB; is it the right file?")
        return None
    return path, data
