"""Media types (RFC 9110 §8.3.1) read strictly, and the error every strict body reader raises.

Parsers disagree on everything the grammar leaves loose: a parameter given twice (first or last wins),
RFC 2231 extended names (`boundary*=UTF-8''A`), quoted-pair escapes, commas and spaces inside a token. A
body whose framing or charset depends on such a header cannot be read with certainty, so these readers refuse
it (`Unreadable`) instead of picking one reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authproxy.standards.http import HTTP_TOKEN

__all__ = ["MediaType", "Unreadable", "check_charset", "is_utf8_charset", "parse_media_type", "quote_param"]

# The charsets every reader decodes alike: a body declared in any other (utf-7, utf-16, latin-1) would be
# decoded by some upstream parsers and read as ASCII or UTF-8 by others.
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_OWS = " \t"
_QUOTED = re.compile(r'"([^"\\\x00-\x08\x0a-\x1f\x7f]*)"')  # no quoted-pair: escapes are read differently
_TOKEN_PREFIX = re.compile(HTTP_TOKEN.pattern)


class Unreadable(ValueError):
    """A body, or the header that frames it, that a strict reader cannot read with certainty.

    The caller decides what that means: a request body is refused with 400, an upstream answer that must be
    filtered is a 502. `reason` is a fixed phrase (never the offending bytes).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MediaType:
    essence: str  # "type/subtype", lower-cased
    params: tuple[tuple[str, str], ...]  # (lower-cased name, value as given, unquoted); each name once

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def __str__(self) -> str:
        return self.essence + "".join(f"; {k}={quote_param(v)}" for k, v in self.params)


def parse_media_type(value: str, *, what: str = "Content-Type") -> MediaType:
    """`type/subtype *(; name=value)`; raises Unreadable on anything a parser could read two ways."""
    text = value.strip(_OWS)
    kind = _leading_token(text, what)
    text = text[len(kind) :]
    if not text.startswith("/"):
        raise Unreadable(f"the {what} header is not a media type")
    subtype = _leading_token(text[1:], what)
    return MediaType(f"{kind}/{subtype}".lower(), parse_params(text[1 + len(subtype) :], what))


def parse_params(text: str, what: str) -> tuple[tuple[str, str], ...]:
    """`*(OWS ";" OWS name=value)`: each name once, no `name*`; a value is a token or an escape-free
    quoted-string."""
    params: list[tuple[str, str]] = []
    rest = text.lstrip(_OWS)
    while rest:
        if not rest.startswith(";"):
            raise Unreadable(f"the {what} header has text outside its parameters")
        rest = rest[1:].lstrip(_OWS)
        if not rest:
            break
        name = _leading_token(rest, what).lower()
        rest = rest[len(name) :]
        if not rest.startswith("="):
            raise Unreadable(f"the {what} header has a parameter without a value")
        value, rest = _param_value(rest[1:], what)
        if name.endswith("*"):
            raise Unreadable(f"the {what} header uses an extended (RFC 2231) parameter")
        if any(key == name for key, _ in params):
            raise Unreadable(f"the {what} header gives the parameter '{name}' twice")
        params.append((name, value))
        rest = rest.lstrip(_OWS)
    return tuple(params)


def _leading_token(text: str, what: str) -> str:
    found = _TOKEN_PREFIX.match(text)
    if found is None:
        raise Unreadable(f"the {what} header is malformed")
    return found.group()


def _param_value(text: str, what: str) -> tuple[str, str]:
    if text.startswith('"'):
        quoted = _QUOTED.match(text)
        if quoted is None:
            raise Unreadable(f"the {what} header has a quoted value with an escape or no end")
        return quoted.group(1), text[quoted.end() :]
    token = _TOKEN_PREFIX.match(text)
    if token is None:
        raise Unreadable(f"the {what} header has an empty parameter value")
    return token.group(), text[token.end() :]


def is_utf8_charset(name: str) -> bool:
    """Whether a charset name (a `charset` parameter, a form's `_charset_` field) names UTF-8 or ASCII."""
    return name.lower() in _UTF8_NAMES


def check_charset(media: MediaType, what: str = "the body") -> None:
    """Refuse a declared charset other than UTF-8 (or its ASCII subset)."""
    charset = media.param("charset")
    if charset is not None and not is_utf8_charset(charset):
        raise Unreadable(f"{what} must be UTF-8; a declared charset other than UTF-8 or ASCII is refused")


def quote_param(value: str) -> str:
    """A parameter value as a token when it is one, else a quoted-string (callers never pass `"` or `\\`)."""
    return value if HTTP_TOKEN.fullmatch(value) else f'"{value}"'
