"""`application/x-www-form-urlencoded` read strictly and written canonically.

Readers split and decode a form differently: python-multipart (Starlette, FastAPI) also splits on `;`,
aiohttp decodes with the declared charset, some keep a malformed `%` escape as text and others drop the pair.
So a field is read only from a body every reader frames alike: pairs split on `&` alone, each `name=value`,
printable ASCII with `+` for space and well-formed `%XX` escapes that decode to UTF-8; anything else is
Unreadable. What is forwarded is `write_urlencoded` of the pairs read: every byte outside the unreserved set
percent-encoded.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from authproxy.standards.media import Unreadable

__all__ = ["read_urlencoded", "write_urlencoded"]

# A pair's bytes: printable ASCII except the separators readers disagree on (`;`) and a `%` that is no escape.
_PAIR_TEXT = re.compile(r"(?:[!-$&-:<-~]|%[0-9A-Fa-f]{2})*")


def read_urlencoded(data: bytes, *, what: str = "the form body") -> list[tuple[str, str]]:
    """Every (name, value) pair in order; raises Unreadable."""
    if not data:
        return []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise Unreadable(f"{what} has bytes that are not percent-encoded") from None
    pairs: list[tuple[str, str]] = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not eq or not name or not _PAIR_TEXT.fullmatch(piece):
            raise Unreadable(f"{what} is not name=value pairs joined by '&'")
        pairs.append((_decode(name, what), _decode(value, what)))
    return pairs


def _decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{what} has a percent-encoded value that is not UTF-8") from None


def write_urlencoded(pairs: list[tuple[str, str]]) -> bytes:
    """The canonical encoding: `&`-joined, every byte outside A-Z a-z 0-9 `-._~` percent-encoded."""
    encoded = (f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    return "&".join(encoded).encode("ascii")
