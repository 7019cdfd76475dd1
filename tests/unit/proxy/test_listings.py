from __future__ import annotations

import json

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.policy.listing import ListingFilter
from authproxy.proxy.listings import filter_listing, filtered_request_headers

AGENTS = ListingFilter("agents", frozenset({"agno-agent", "research-agent"}))


def test_listing_keeps_only_permitted_ids() -> None:
    body = json.dumps(
        [{"id": "agno-agent", "name": "A"}, {"id": "web-search-agent"}, {"id": "research-agent"}]
    )
    kept = json.loads(filter_listing(body.encode(), AGENTS, status=200))
    assert [item["id"] for item in kept] == ["agno-agent", "research-agent"]
    assert kept[0]["name"] == "A"


def test_listing_with_no_permitted_item_is_an_empty_list() -> None:
    only_other = ListingFilter("agents", frozenset({"nobody"}))
    assert filter_listing(b'[{"id": "agno-agent"}]', only_other, status=200) == b"[]"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"agents": [{"id": "agno-agent"}]}',
        b'[{"name": "no id"}]',
        b'[{"id": 7}]',
        b'["agno-agent"]',
        b'[{"id": "agno-agent", "id": "other"}]',
        b'[{"id": "agno-agent", "n": Infinity}]',
        b'\xef\xbb\xbf[{"id": "agno-agent"}]',
    ],
    ids=[
        "garbage",
        "not-utf8",
        "object-not-list",
        "item-without-id",
        "numeric-id",
        "bare-strings",
        "repeated-key",
        "infinity",
        "byte-order-mark",
    ],
)
def test_unfilterable_listing_fails_closed(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_listing(body, AGENTS, status=200)


def test_listing_is_reencoded_canonically() -> None:
    body = b'[ {"id": "agno-agent", "name": "caf\\u00e9"} ]'
    assert filter_listing(body, AGENTS, status=200) == '[{"id":"agno-agent","name":"café"}]'.encode()


@pytest.mark.parametrize(
    "body",
    [b"[]", b'[{"id": "web-search-agent"}]', b'  [{"id": "x", "id": "y"}', b'\xef\xbb\xbf[{"id": "x"}]'],
)
@pytest.mark.parametrize("status", [201, 203, 206, 404, 500])
def test_a_non_200_listing_holding_a_list_fails_closed(body: bytes, status: int) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_listing(body, AGENTS, status=status)


@pytest.mark.parametrize(
    "body", [b"", b'{"detail": "Not Found"}', b"Internal Server Error", b"<html>[]</html>"]
)
def test_a_non_200_listing_without_a_list_passes_as_it_came(body: bytes) -> None:
    assert filter_listing(body, AGENTS, status=404) is body


def test_a_filtered_request_asks_for_the_whole_answer_uncompressed() -> None:
    headers = filtered_request_headers(
        [
            ("Accept-Encoding", "gzip, br"),
            ("accept-encoding", "zstd"),
            ("X-A", "1"),
            ("Range", "bytes=0-10"),
            ("if-range", '"v1"'),
            ("RANGE", "bytes=5-"),
        ]
    )
    assert headers == [("X-A", "1"), ("Accept-Encoding", "identity")]
