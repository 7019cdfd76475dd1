"""HTTP grammar from RFC 9110 that config and policy both check against."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["HTTP_TOKEN", "identity_only"]

# RFC 9110 §5.6.2 token: method names, header names, and (by the same rule) cookie names.
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def identity_only(content_encodings: Iterable[str]) -> bool:
    """Whether every Content-Encoding value (each header given) is `identity`: bytes a reader can check.
    Every value counts: `identity, gzip` or a second header naming gzip is still compressed."""
    return all(coding.strip().lower() == "identity" for coding in content_encodings)
