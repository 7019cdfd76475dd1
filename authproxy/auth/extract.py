"""The token from the configured sources, in order: absent (None), ambiguous (InvalidToken) or present.

The first source that is present wins, even when its value is unusable: falling through to the next
source would let a client choose which credential is judged.
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.config.model import JwtConfig
from authproxy.errors import InvalidToken

__all__ = ["extract_token"]

_COOKIE = "Cookie"


def extract_token(headers: CIMultiDictProxy[str] | CIMultiDict[str], jwt: JwtConfig) -> str | None:
    """The raw token from the first configured source that is present, or None when none is."""
    for source in jwt.sources:
        if source == "header":
            values = headers.getall(jwt.header, None)
            if values is None:
                continue
            if len(values) > 1:
                raise InvalidToken("multiple authorization headers")
            return _bearer_credential(values[0])
        cookies = headers.getall(_COOKIE, None)
        if cookies is not None:
            token = _cookie_value(cookies, jwt.cookie)
            if token is not None:
                return token
    return None


def _bearer_credential(value: str) -> str:
    scheme, _, credential = value.partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("authorization scheme is not Bearer")
    if not credential:
        raise InvalidToken("empty bearer token")
    if " " in credential or "\t" in credential:
        # "Bearer a b" or a doubled space: exactly one credential is allowed, never a guess at which.
        raise InvalidToken("malformed bearer credential")
    return credential


def _cookie_value(headers: list[str], name: str) -> str | None:
    """The named cookie's value across every Cookie header; a second occurrence is ambiguous."""
    found: str | None = None
    for header in headers:
        if name not in header:  # cheap reject: most requests carry other cookies only
            continue
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if not sep or key.strip() != name:
                continue
            if found is not None:
                raise InvalidToken(f"cookie {name} appears more than once")
            found = _unquote(value.strip())
    if found == "":
        raise InvalidToken("empty cookie token")
    return found


def _unquote(value: str) -> str:
    # RFC 6265 allows a cookie value wrapped in one pair of double quotes.
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value
