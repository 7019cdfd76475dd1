"""JSON read strictly and written canonically (RFC 8259), for every body the proxy reads and forwards.

What parsers read differently is refused rather than resolved: a repeated key (first or last wins),
NaN/Infinity and numbers that overflow to them, bytes that are not UTF-8 (Python's `json.loads(bytes)` would
sniff UTF-16/32), a byte-order mark, unpaired surrogate escapes (kept by Python, replaced by others), and
nesting deeper than MAX_DEPTH (a stack-exhaustion lever, and nothing a real request needs). What the proxy
forwards is `write_json` of what it read: one encoding, no second reading.
"""

from __future__ import annotations

import json
import math
from typing import Any

from authproxy.standards.media import Unreadable

__all__ = ["ANSWER_MAX_DEPTH", "MAX_DEPTH", "read_json", "write_json"]

MAX_DEPTH = 64  # nesting of arrays and objects in a request; the top-level value is depth 1
# An upstream's answer that is filtered or checked: deeper documents are real (sessions, schemas), and the
# bound only keeps the walk (and the stack of whoever reads it next) finite.
ANSWER_MAX_DEPTH = 512


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise Unreadable("a JSON object repeats a key")
    return found


def _no_constant(name: str) -> Any:
    raise Unreadable(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Unreadable("a JSON number is out of range")
    return value


def read_json(data: bytes, *, what: str = "the body", max_depth: int = MAX_DEPTH) -> Any:
    """The one JSON value in `data`; raises Unreadable."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise Unreadable(f"{what} starts with a byte-order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{what} is not UTF-8") from None
    try:
        document = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite
        )
    except RecursionError:
        raise Unreadable(f"{what} is nested deeper than {max_depth} levels") from None
    except Unreadable:  # from a hook: a repeated key, NaN/Infinity, an overflowing number
        raise
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        raise Unreadable(f"{what} is not valid JSON") from None
    _check_tree(document, what, max_depth)
    return document


def _check_tree(document: Any, what: str, max_depth: int) -> None:
    """Depth and surrogates, walked without recursion (the depth check must not itself recurse)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node, what)
        elif isinstance(node, dict | list):
            if depth > max_depth:
                raise Unreadable(f"{what} is nested deeper than {max_depth} levels")
            if isinstance(node, dict):
                for key, value in node.items():
                    _check_text(key, what)
                    stack.append((value, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)


def _check_text(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Unreadable(f"{what} holds an unpaired surrogate escape") from None


def write_json(document: Any) -> bytes:
    """The canonical encoding: compact, UTF-8, nothing a strict reader would refuse."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
