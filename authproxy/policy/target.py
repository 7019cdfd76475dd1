"""The raw request target -> a Target of decoded path segments, or BadTarget.

This is the single canonicaliser: the matcher sees only `segments`, and the upstream receives `path` and
`query` exactly as sent. Rather than normalise an ambiguous path (and risk matching one form while the
upstream serves another), every form whose meaning differs between servers is refused.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from authproxy.errors import BadTarget

__all__ = ["Target", "decode_segment", "parse_target"]


class Target(NamedTuple):
    """Immutable; a NamedTuple because it is built per request and costs half a frozen dataclass."""

    path: str  # raw path as sent, without the query
    query: str | None  # raw query without '?'; None when the target has no '?'
    segments: tuple[str, ...]  # percent-decoded; one trailing slash ignored


# Plain printable ASCII with nothing to decode and no character we refuse: the common case.
_PLAIN = re.compile(r'/[!"$&-:<-\[\]-~]*')
# Characters refused anywhere in the raw path: controls, space, DEL, non-ASCII, '#', ';', '\\'.
_REFUSED_RAW = re.compile(r'[^!"$-:<-\[\]-~]')
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Refused once decoded: controls, DEL, and characters that change how a server splits the path.
_REFUSED_DECODED = re.compile(r"[\x00-\x1f\x7f/\\]")
# "%252F" decodes to "%2F": an upstream that decodes twice would see a '/' we never matched.
_DOUBLE_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def parse_target(raw: str) -> Target:
    """Split and check an origin-form request target; raise BadTarget for anything ambiguous."""
    path, sep, query = raw.partition("?")
    if _PLAIN.fullmatch(path) is not None and "//" not in path:
        segments = path[1:].split("/")
        if "/." in path:
            _refuse_dot_segments(segments)
    else:
        segments = _decode_path(path)
    if sep and "#" in query:
        # Never valid in a request target; servers disagree on whether it ends the query.
        raise BadTarget("request target carries a fragment ('#')")
    if segments[-1] == "":
        segments.pop()  # "/" -> (), "/agents/" -> ("agents",)
    return Target(path, query if sep else None, tuple(segments))


def _refuse_dot_segments(segments: list[str]) -> None:
    for segment in segments:
        if segment in (".", ".."):
            raise BadTarget("dot-segment in path")


def _decode_path(path: str) -> list[str]:
    if not path.startswith("/"):
        raise BadTarget("request target is not in origin form (must start with '/')")
    if "//" in path:
        raise BadTarget("empty path segment ('//')")
    _refuse_raw(path)
    segments = path[1:].split("/")
    _refuse_dot_segments(segments)
    return [_unescape(s) if "%" in s else s for s in segments]


def _refuse_raw(text: str) -> None:
    found = _REFUSED_RAW.search(text)
    if found is None:
        return
    char = found.group()
    if char == "#":
        raise BadTarget("request target carries a fragment ('#')")
    raise BadTarget(f"character {char!r} is not allowed in the path")


def decode_segment(segment: str) -> str:
    """Percent-decode one raw segment (no '/' inside); raise BadTarget when the result is ambiguous."""
    _refuse_raw(segment)
    return _unescape(segment) if "%" in segment else segment


def _unescape(segment: str) -> str:
    if _BAD_ESCAPE.search(segment) is not None:
        raise BadTarget("malformed percent-escape in path")
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("percent-escapes in path are not valid UTF-8") from None
    bad = _REFUSED_DECODED.search(decoded)
    if bad is not None:
        raise BadTarget(f"percent-encoded {bad.group()!r} in path")
    if decoded in (".", ".."):
        raise BadTarget("percent-encoded dot-segment in path")
    if "%" in decoded and _DOUBLE_ESCAPE.search(decoded) is not None:
        raise BadTarget("double percent-encoding in path")
    return decoded
