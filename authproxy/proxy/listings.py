"""AgentOS filtered listings: `GET /agents` (teams, workflows) for a caller with only per-item read scopes.

Only these listing responses are read whole — with a size bound — parsed, filtered to the permitted ids
and re-serialised; every other response streams untouched. Anything we cannot filter with certainty (not a
JSON list, an item without a string `id`, too large, compressed) fails closed with 502: an unfiltered
listing must never reach the caller.
"""

from __future__ import annotations

import json
from typing import Any

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.decision import ListingFilter

__all__ = ["MAX_LISTING_BYTES", "filter_listing", "listing_request_headers", "permitted_items", "read_json"]

MAX_LISTING_BYTES = 8 * 1024 * 1024


def listing_request_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Ask for an identity-encoded body: we must read the JSON to filter it."""
    kept = [(name, value) for name, value in headers if name.lower() != "accept-encoding"]
    kept.append(("Accept-Encoding", "identity"))
    return kept


def filter_listing(body: bytes, listing: ListingFilter) -> bytes:
    """Keep the items of a JSON list whose `id` is permitted; raises UpstreamUnavailable if unsure."""
    kept = permitted_items(read_json(body, "the listing response"), listing.ids, "the listing response")
    return json.dumps(kept, separators=(",", ":")).encode()


def read_json(body: bytes, what: str) -> Any:
    """An answer to be filtered, parsed; raises UpstreamUnavailable when it is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as bad:
        raise UpstreamUnavailable(f"{what} is not JSON and cannot be filtered") from bad


def permitted_items(items: Any, ids: frozenset[str], what: str) -> list[Any]:
    """The objects of the list `items` whose string `id` is in `ids`; raises UpstreamUnavailable if unsure."""
    if not isinstance(items, list):
        raise UpstreamUnavailable(f"{what} is not a JSON list and cannot be filtered")
    kept = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise UpstreamUnavailable(f"an item of {what} has no id and cannot be filtered")
        if item["id"] in ids:
            kept.append(item)
    return kept
