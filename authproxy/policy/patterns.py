"""Route keys ("METHOD PATH" or bare "PATH") -> RoutePattern, with a clear ValueError for each mistake."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import quote

from authproxy.errors import BadTarget
from authproxy.policy.target import decode_segment
from authproxy.standards.http import HTTP_TOKEN

__all__ = [
    "NOT_ADMITTED",
    "RANK_ANY",
    "RANK_HEAD_VIA_GET",
    "RANK_NAMED",
    "RULE_METHODS",
    "RoutePattern",
    "Segment",
    "Shape",
    "covers",
    "intersection",
    "parse_pattern",
    "shape_text",
]

# A decoded literal segment, or None for a one-segment wildcard ({name} or *).
Segment: TypeAlias = str | None
# A set of paths: segments, and whether any rest may follow ("**").
Shape: TypeAlias = tuple[tuple[Segment, ...], bool]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# The methods a request can carry: those aiohttp's request parser (llhttp) accepts, less CONNECT, which the
# gate refuses. A request with any other method is answered 400 before a rule is read, so a rule naming
# one could never match: a misspelling (GTE) is reported instead of becoming a dead rule.
RULE_METHODS = frozenset(
    {
        *("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"),  # RFC 9110, 5789
        *("COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK"),  # WebDAV
        *("BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "MKCALENDAR"),
        *("LINK", "UNLINK", "SOURCE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PURGE"),
    }
)
_COMMON_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")  # "did you mean" picks

# How a rule admits a request method, best first; used to rank rules of equal path specificity.
RANK_NAMED = 2  # the rule names the method
RANK_HEAD_VIA_GET = 1  # HEAD admitted because the rule names GET
RANK_ANY = 0  # the rule is for every method
NOT_ADMITTED = -1


@dataclass(frozen=True, slots=True)
class RoutePattern:
    key: str  # as written in the policy
    methods: frozenset[str] | None  # None: every method
    segments: tuple[Segment, ...]
    tail: bool  # ends in "**": any rest of the path, including none
    param_names: tuple[str | None, ...]  # per segment: the {name} bound there, else None
    canonical: str  # "GET,HEAD /agents/{}/runs": equal canonicals are the same rule
    # (literal segments, single-segment wildcards, 1 unless "**", 1 if methods are named): larger wins.
    specificity: tuple[int, ...]

    def method_rank(self, method: str) -> int:
        """How this rule admits `method` (RANK_*), or NOT_ADMITTED."""
        if self.methods is None:
            return RANK_ANY
        if method in self.methods:
            return RANK_NAMED
        if method == "HEAD" and "GET" in self.methods:
            return RANK_HEAD_VIA_GET
        return NOT_ADMITTED


def parse_pattern(key: str) -> RoutePattern:
    """Parse one route key; raise ValueError naming the mistake."""
    words = key.split()
    if len(words) == 1:
        methods, path = None, words[0]
    elif len(words) == 2:
        methods, path = _parse_methods(words[0]), words[1]
    else:
        raise ValueError("must be 'METHOD PATH' or 'PATH' (a path holds no spaces)")
    segments, names, tail = _parse_path(path)
    literals = sum(1 for s in segments if s is not None)
    specificity = (literals, len(segments) - literals, 0 if tail else 1, 0 if methods is None else 1)
    return RoutePattern(
        key=key,
        methods=methods,
        segments=segments,
        tail=tail,
        param_names=names,
        canonical=f"{_canonical_methods(methods)} {_canonical_path(segments, tail)}",
        specificity=specificity,
    )


def _parse_methods(text: str) -> frozenset[str] | None:
    if text == "*":
        return None
    methods: set[str] = set()
    for method in text.split(","):
        if method == "*":
            raise ValueError("'*' means every method and cannot be listed with others")
        if HTTP_TOKEN.fullmatch(method) is None:
            raise ValueError(f"{method!r} is not an HTTP method (write e.g. GET or GET,HEAD)")
        if method != method.upper():
            # Methods are case-sensitive on the wire; a lower-case rule would never match a GET.
            raise ValueError(f"method {method!r} must be upper-case: write {method.upper()}")
        if method not in RULE_METHODS:
            raise ValueError(_unknown_method(method))
        methods.add(method)
    return frozenset(methods)


def _unknown_method(method: str) -> str:
    close = difflib.get_close_matches(method, _COMMON_METHODS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown method {method!r}{hint}: such requests are refused (400), so the rule could never match"


def _parse_path(path: str) -> tuple[tuple[Segment, ...], tuple[str | None, ...], bool]:
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    if "?" in path or "#" in path:
        raise ValueError("a route matches the path only: remove the query or fragment")
    if "//" in path:
        raise ValueError(f"path {path!r} has an empty segment ('//')")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]  # one trailing slash is ignored, as in requests
    parts = path[1:].split("/") if path != "/" else []
    tail = bool(parts) and parts[-1] == "**"
    if tail:
        parts.pop()
    segments: list[Segment] = []
    names: list[str | None] = []
    for part in parts:
        segment, name = _parse_segment(part)
        if name is not None and name in names:
            raise ValueError(f"parameter {{{name}}} appears twice")
        segments.append(segment)
        names.append(name)
    return tuple(segments), tuple(names), tail


def _parse_segment(part: str) -> tuple[Segment, str | None]:
    if part == "*":
        return None, None
    if part == "**":
        raise ValueError("'**' may only be the last segment")
    param = _PARAM.fullmatch(part)
    if param is not None:
        return None, param.group(1)
    if part.startswith("{") and part.endswith("}"):
        raise ValueError(f"{part!r}: a parameter name is a letter or '_' then letters, digits or '_'")
    if any(c in part for c in "{}*"):
        raise ValueError(f"segment {part!r}: '{{name}}', '*' and '**' must be whole segments")
    if part in (".", ".."):
        raise ValueError(f"segment {part!r}: dot-segments are refused in requests, so never match")
    try:
        return decode_segment(part), None
    except BadTarget as bad:
        raise ValueError(f"segment {part!r} could never match a request: {bad.reason}") from None


def _canonical_methods(methods: frozenset[str] | None) -> str:
    return "*" if methods is None else ",".join(sorted(methods))


def _canonical_path(segments: tuple[Segment, ...], tail: bool) -> str:
    # Literals re-encoded so that a literal '*' or '{' can never read as a wildcard.
    parts = ["{}" if s is None else quote(s, safe="!$&'()+,;=:@") for s in segments]
    if tail:
        parts.append("**")
    return "/" + "/".join(parts)


def intersection(a: RoutePattern, b: RoutePattern) -> Shape | None:
    """The paths both patterns match, as one shape; None when they share none."""
    sa, sb = a.segments, b.segments
    if (not a.tail and len(sb) > len(sa)) or (not b.tail and len(sa) > len(sb)):
        return None
    if not a.tail and not b.tail and len(sa) != len(sb):
        return None
    length = max(len(sa), len(sb))
    merged: list[Segment] = []
    for i in range(length):
        x = sa[i] if i < len(sa) else None  # past its prefix, a "**" pattern takes anything
        y = sb[i] if i < len(sb) else None
        if x is not None and y is not None and x != y:
            return None
        merged.append(x if x is not None else y)
    return tuple(merged), a.tail and b.tail


def covers(p: RoutePattern, shape: Shape) -> bool:
    """True when `p` matches every path of `shape`."""
    segments, tail = shape
    if len(p.segments) > len(segments) or (not p.tail and (tail or len(p.segments) != len(segments))):
        return False
    return all(s is None or s == t for s, t in zip(p.segments, segments, strict=False))


def shape_text(shape: Shape) -> str:
    """A shape for messages: "/a/b", "/a/*/c", "/a/**"."""
    segments, tail = shape
    parts = ["*" if s is None else quote(s, safe="!$&'()+,;=:@") for s in segments]
    if tail:
        parts.append("**")
    return "/" + "/".join(parts)
