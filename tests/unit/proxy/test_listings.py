from __future__ import annotations

import json

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.decision import ListingFilter
from authproxy.proxy.listings import filter_listing, listing_request_headers

AGENTS = ListingFilter("agents", frozenset({"agno-agent", "research-agent"}))


def test_listing_keeps_only_permitted_ids() -> None:
    body = json.dumps(
        [{"id": "agno-agent", "name": "A"}, {"id": "web-search-agent"}, {"id": "research-agent"}]
    )
    kept = json.loads(filter_listing(body.encode(), AGENTS))
    assert [item["id"] for item in kept] == ["agno-agent", "research-agent"]
    assert kept[0]["name"] == "A"


def test_listing_with_no_permitted_item_is_an_empty_list() -> None:
    only_other = ListingFilter("agents", frozenset({"nobody"}))
    assert filter_listing(b'[{"id": "agno-agent"}]', only_other) == b"[]"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"agents": [{"id": "agno-agent"}]}',
        b'[{"name": "no id"}]',
        b'[{"id": 7}]',
        b'["agno-agent"]',
    ],
    ids=["garbage", "not-utf8", "object-not-list", "item-without-id", "numeric-id", "bare-strings"],
)
def test_unfilterable_listing_fails_closed(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_listing(body, AGENTS)


def test_listing_request_asks_for_identity_encoding() -> None:
    headers = listing_request_headers(
        [("Accept-Encoding", "gzip, br"), ("accept-encoding", "zstd"), ("X-A", "1")]
    )
    assert headers == [("X-A", "1"), ("Accept-Encoding", "identity")]
