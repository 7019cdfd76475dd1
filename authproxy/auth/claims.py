"""Identity from verified claims: configured (dotted) paths, scopes as a list or a space-separated string."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from authproxy.config.model import ClaimPaths
from authproxy.errors import InvalidToken

__all__ = ["Identity", "check_forwardable", "identity_from_claims"]

_ABSENT: Final = object()
# Every control character but tab: aiohttp refuses to send them (a 500), and CR/LF would split a header.
_UNSAFE_VALUE_CHARS = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t"}


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str | None
    session_id: str | None
    scopes: frozenset[str]
    jti: str | None


def identity_from_claims(claims: Mapping[str, Any], paths: ClaimPaths) -> Identity:
    """The caller's identity; InvalidToken when a claim we read has the wrong JSON type."""
    return Identity(
        user_id=_optional_string(_lookup(claims, paths.user_id), "user id claim has the wrong type"),
        session_id=_optional_string(_lookup(claims, paths.session_id), "session id claim has the wrong type"),
        scopes=_scopes(_lookup(claims, paths.scopes)),
        jti=_optional_string(claims.get("jti", _ABSENT), "jti claim has the wrong type"),
    )


def check_forwardable(identity: Identity, identity_headers: Iterable[tuple[str, str]]) -> None:
    """InvalidToken when a claim cannot travel in the identity header configured for it (the HeaderPlan's
    `identity`, as (field, header name)). The gate refuses on it, so `explain`, `authproxy test`, the
    decision port and the proxy all see the same 401, and no later stage turns an allow into a deny."""
    for field, _ in identity_headers:
        if field == "scopes":
            if any(not scope or scope.split() != [scope] for scope in identity.scopes):
                # Scopes travel space-separated: one scope "x proxy:admin" would arrive as two.
                raise InvalidToken("a scope holds whitespace and cannot be forwarded")
            value: str | None = "".join(identity.scopes)
        else:
            value = identity.user_id if field == "user_id" else identity.session_id
        # Claims come from a signed token, but a header is no place for a line break: refuse, never trim.
        if value and not _UNSAFE_VALUE_CHARS.isdisjoint(value):
            raise InvalidToken(f"the {field} claim holds a control character")


@lru_cache(maxsize=64)
def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _lookup(claims: Mapping[str, Any], path: str) -> object:
    """The value at `path`, or _ABSENT. A claim literally named `path` wins over the dotted walk,
    so namespaced claims such as ``https://example.com/roles`` keep working."""
    value = claims.get(path, _ABSENT)
    if value is not _ABSENT or "." not in path:
        return value
    node: object = claims
    for segment in _segments(path):
        if not isinstance(node, Mapping):
            return _ABSENT
        node = node.get(segment, _ABSENT)
        if node is _ABSENT:
            return _ABSENT
    return node


def _optional_string(value: object, reason: str) -> str | None:
    if value is _ABSENT:
        return None
    if not isinstance(value, str):
        # Numbers are refused rather than converted: 1 and "1.0" must not become the same user.
        raise InvalidToken(reason)
    return value


def _scopes(value: object) -> frozenset[str]:
    if value is _ABSENT:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise InvalidToken("scopes claim has the wrong type")
