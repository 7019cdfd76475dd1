"""HTTP grammar from RFC 9110 that config and policy both check against."""

from __future__ import annotations

import re

__all__ = ["HTTP_TOKEN"]

# RFC 9110 §5.6.2 token: method names, header names, and (by the same rule) cookie names.
HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
