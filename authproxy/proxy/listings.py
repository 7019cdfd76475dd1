"""AgentOS filtered listings: `GET /agents` (teams, workflows) for a caller with only per-item read scopes,
and what every filtered answer (listings, `/config`, MCP `tools/list`, response checks) has in common.

Only these listing responses are read whole — with a size bound — parsed strictly, filtered to the
permitted ids and re-serialised; every other response streams untouched. Anything we cannot filter with
certainty (not a JSON list, an item without a string `id`, a duplicate key, too large, compressed) fails
closed with 502: an unfiltered listing must never reach the caller. An answer other than 200 is never
filtered, so it passes only when it holds nothing a client could read as the listing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from multidict import CIMultiDict

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.listing import ListingFilter
from authproxy.standards.json_text import ANSWER_MAX_DEPTH, read_json, write_json
from authproxy.standards.media import Unreadable

__all__ = [
    "MAX_LISTING_BYTES",
    "filter_listing",
    "filtered_answer_headers",
    "filtered_request_headers",
    "nothing_to_filter",
    "permitted_items",
    "read_answer",
]

MAX_LISTING_BYTES = 8 * 1024 * 1024
_JSON_SPACE = b" \t\r\n"
# Asking for the whole answer as it is: a range would come back as a 206 slice of the unfiltered body, and
# an encoding other than identity as bytes we cannot read.
_NOT_ASKED = frozenset({"accept-encoding", "range", "if-range"})


def filtered_request_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers of a request whose answer we read: no `Range`/`If-Range`, identity encoding."""
    kept = [(name, value) for name, value in headers if name.lower() not in _NOT_ASKED]
    kept.append(("Accept-Encoding", "identity"))
    return kept


# Fields that describe the upstream's bytes, which a filtered answer no longer is: a validator or digest of
# the whole body would let a cache or a client take the cut answer for the uncut one (or the reverse).
_OF_THE_BYTES = ("ETag", "Content-MD5", "Digest", "Content-Digest", "Repr-Digest", "Content-Length")


def filtered_answer_headers(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """The upstream's answer headers for an answer we re-encode: those describing its bytes go (the length
    and framing are the server's to write)."""
    for name in (*_OF_THE_BYTES, "Transfer-Encoding"):
        headers.popall(name, None)
    return headers


def filter_listing(body: bytes, listing: ListingFilter, *, status: int) -> bytes:
    """Keep the items of a JSON list whose `id` is permitted; raises UpstreamUnavailable if unsure."""
    if status != 200:
        return nothing_to_filter(body, lambda document: isinstance(document, list), "the listing response")
    kept = permitted_items(read_answer(body, "the listing response"), listing.ids, "the listing response")
    return write_json(kept)


def read_answer(body: bytes, what: str) -> Any:
    """An answer to be filtered, read strictly; raises UpstreamUnavailable when it cannot be."""
    try:
        return read_json(body, what=what, max_depth=ANSWER_MAX_DEPTH)
    except Unreadable as bad:
        raise UpstreamUnavailable(f"{bad.reason}; it cannot be filtered") from bad


def nothing_to_filter(body: bytes, holds: Callable[[Any], bool], what: str) -> bytes:
    """A non-200 answer, passed as it came when no client could read in it anything to filter.

    `holds(document)` says whether a document carries what the filter would cut. A body no strict reader
    reads may still be read by a lenient client parser (a repeated key, NaN, a byte-order mark): when it
    opens like a JSON array or object it is refused too. Raises UpstreamUnavailable.
    """
    if not body.strip(_JSON_SPACE):
        return body
    try:
        document = read_json(body, what=what, max_depth=ANSWER_MAX_DEPTH)
    except Unreadable:
        if body.lstrip(_JSON_SPACE).removeprefix(b"\xef\xbb\xbf").lstrip(_JSON_SPACE)[:1] in (b"[", b"{"):
            raise UpstreamUnavailable(f"{what} is not a 200 and may hold what must be filtered") from None
        return body
    if holds(document):
        raise UpstreamUnavailable(f"{what} is not a 200 and holds what must be filtered")
    return body


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
