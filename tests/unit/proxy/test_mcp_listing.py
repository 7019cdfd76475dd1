"""tools/list answers filtered in a JSON body or an SSE stream, whatever the chunking, failing closed."""

from __future__ import annotations

import json

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.proxy.mcp.listing import EventFilter, filter_json

TOOLS = [{"name": "read", "inputSchema": {}}, {"name": "purge", "inputSchema": {}}]


def listed(name: str) -> bool:
    return name == "read"


def answer(ident: int, tools: object = TOOLS) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"tools": tools}}


def test_a_json_answer_keeps_only_the_callable_tools_of_the_asked_ids() -> None:
    batch = json.dumps([answer(1), answer(2), {"jsonrpc": "2.0", "id": 3, "result": {}}]).encode()
    filtered = json.loads(filter_json(batch, [1], listed))
    assert [a["result"].get("tools") for a in filtered] == [[TOOLS[0]], TOOLS, None]


def test_an_answer_that_does_not_answer_a_listing_passes_byte_for_byte() -> None:
    body = b'{"jsonrpc": "2.0",  "id": 5, "result": {"content": []}}'
    assert filter_json(body, [1], listed) is body


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_an_event_stream_is_filtered_whatever_the_chunks(ending: bytes, size: int) -> None:
    note = (
        b"event: message" + ending + b'data: {"jsonrpc":"2.0","method":"notifications/progress"}' + ending * 2
    )
    listing = b"id: e-2" + ending + b"event: message" + ending + b"data: " + json.dumps(answer(9)).encode()
    stream = note + listing + ending * 2
    events = EventFilter([9], listed)
    out = b"".join(events.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + events.close()
    assert out.startswith(note)
    rest = out[len(note) :].decode()
    assert rest.startswith("id: e-2\nevent: message\ndata: ") and rest.endswith("\n\n")
    data = json.loads(rest.split("data: ", 1)[1])
    assert data["result"]["tools"] == [TOOLS[0]]


def test_a_resumed_stream_filters_any_tool_list_by_its_shape() -> None:
    events = EventFilter(None, listed)
    out = events.feed(b"data: " + json.dumps(answer(77)).encode() + b"\n\n")
    assert json.loads(out.split(b"data: ", 1)[1])["result"]["tools"] == [TOOLS[0]]
    other = b'data: {"jsonrpc":"2.0","id":78,"result":{"content":[]}}\n\n'
    assert events.feed(other) == other


@pytest.mark.parametrize("tools", [None, "read", [{"title": "no name"}], ["read"]])
def test_a_listing_that_cannot_be_filtered_fails_closed(tools: object) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_json(json.dumps(answer(1, tools)).encode(), [1], listed)
    with pytest.raises(UpstreamUnavailable):
        EventFilter([1], listed).feed(b"data: " + json.dumps(answer(1, tools)).encode() + b"\n\n")
