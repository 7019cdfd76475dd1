"""HTTP grammar from RFC 9110 that config and policy both check against."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["HTTP_TOKEN", "SINGLETON_FIELDS", "identity_only", "repeats_a_singleton"]

# RFC 9110 §5.6.2 token: method names, header names, and (by the same rule) cookie names.
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def identity_only(content_encodings: Iterable[str]) -> bool:
    """Whether every Content-Encoding value (each header given) is `identity`: bytes a reader can check.
    Every value counts: `identity, gzip` or a second header naming gzip is still compressed."""
    return all(coding.strip().lower() == "identity" for coding in content_encodings)


# Fields a request may carry once: two values would let two readers take different ones (two Hosts pick two
# virtual hosts, two Content-Lengths two bodies). The set is aiohttp's parser's, so the proxied port refuses
# what the decision port's parser refuses.
SINGLETON_FIELDS = frozenset(
    {
        b"content-length",
        b"content-location",
        b"content-range",
        b"content-type",
        b"etag",
        b"host",
        b"max-forwards",
        b"server",
        b"transfer-encoding",
        b"user-agent",
    }
)


def repeats_a_singleton(names: Iterable[bytes]) -> bool:
    """Whether a field of SINGLETON_FIELDS is among `names` twice (any letter case)."""
    seen: set[bytes] = set()
    for name in names:
        lowered = name.lower()
        if lowered in SINGLETON_FIELDS:
            if lowered in seen:
                return True
            seen.add(lowered)
    return False
