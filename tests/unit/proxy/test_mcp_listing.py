"""tools/list answers filtered in a JSON body or an SSE stream, whatever the chunking and line ends,
re-encoded, failing closed."""

from __future__ import annotations

import json

import pytest

from authproxy.errors import UpstreamUnavailable
from authproxy.proxy.mcp.listing import MAX_EVENT_BYTES, EventFilter, filter_json

TOOLS = [{"name": "read", "inputSchema": {}}, {"name": "purge", "inputSchema": {}}]
NOTE = b'{"jsonrpc":"2.0","method":"notifications/progress"}'


def listed(name: str) -> bool:
    return name == "read"


def answer(ident: int, tools: object = TOOLS) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"tools": tools}}


def stream(events: EventFilter, data: bytes, size: int) -> bytes:
    return b"".join(events.feed(data[i : i + size]) for i in range(0, len(data), size)) + events.close()


def test_a_json_answer_keeps_only_the_callable_tools_of_the_asked_ids() -> None:
    batch = json.dumps([answer(1), answer(2), {"jsonrpc": "2.0", "id": 3, "result": {}}]).encode()
    filtered = json.loads(filter_json(batch, [1], listed, status=200))
    assert [a["result"].get("tools") for a in filtered] == [[TOOLS[0]], TOOLS, None]


def test_a_cut_list_is_private_to_its_caller_whatever_the_upstream_said() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS, "ttlMs": 60000, "cacheScope": "public"}}
    filtered = json.loads(filter_json(json.dumps(body).encode(), [1], listed, status=200))
    assert filtered["result"] == {"tools": [TOOLS[0]], "ttlMs": 60000, "cacheScope": "private"}
    other = {"jsonrpc": "2.0", "id": 2, "result": {"resultType": "complete", "cacheScope": "public"}}
    assert json.loads(filter_json(json.dumps(other).encode(), [1], listed, status=200)) == other


def test_an_answer_that_does_not_answer_a_listing_is_reencoded_unchanged() -> None:
    body = b'{"jsonrpc": "2.0",  "id": 5, "result": {"content": []}}'
    assert filter_json(body, [1], listed, status=200) == b'{"jsonrpc":"2.0","id":5,"result":{"content":[]}}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"purge"}]}}',
        b'{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read","n":NaN}]}}',
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}',
        b"",
    ],
    ids=["repeated-key", "nan", "byte-order-mark", "empty"],
)
def test_a_json_answer_no_strict_reader_reads_fails_closed(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_json(body, [1], listed, status=200)


@pytest.mark.parametrize("status", [201, 203, 206, 400, 500])
def test_a_non_200_json_answer_with_a_tool_list_fails_closed(status: int) -> None:
    for document in (answer(1), [answer(7)], answer(1, None)):
        with pytest.raises(UpstreamUnavailable):
            filter_json(json.dumps(document).encode(), [1], listed, status=status)


@pytest.mark.parametrize(
    "body", [b"", b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}']
)
def test_a_non_200_json_answer_without_a_tool_list_passes_as_it_came(body: bytes) -> None:
    assert filter_json(body, [1], listed, status=400) is body


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_an_event_stream_is_filtered_and_reencoded_whatever_the_chunks(ending: bytes, size: int) -> None:
    note = b"event: message" + ending + b"data: " + NOTE + ending * 2
    listing = b"id: e-2" + ending + b"event: message" + ending + b"data: " + json.dumps(answer(9)).encode()
    out = stream(EventFilter([9], listed, status=200), note + listing + ending * 2, size)
    cut = answer(9, [TOOLS[0]])
    cut["result"] = {"tools": [TOOLS[0]], "cacheScope": "private"}
    kept = json.dumps(cut, separators=(",", ":")).encode()
    assert out == b"event: message\ndata: " + NOTE + b"\n\nevent: message\nid: e-2\ndata: " + kept + b"\n\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"\xef\xbb\xbfdata: {LISTING}\n\n",  # a byte-order mark the client drops
        b"data: {LISTING}\n\r\ndata: {NOTE}\n\n",  # LF lines, a CRLF blank line
        b"data: {LISTING}\r\rdata: {NOTE}\n\n",  # CR line ends before an LF-framed event
        b"data\ndata:{LISTING}\n\n",  # a field without colon, data without space
    ],
    ids=["bom", "crlf-blank-line", "cr-then-lf", "bare-field"],
)
def test_framings_a_client_reads_are_filtered(framing: bytes) -> None:
    data = framing.replace(b"{LISTING}", json.dumps(answer(9)).encode()).replace(b"{NOTE}", NOTE)
    out = stream(EventFilter([9], listed, status=200), data, 3)
    assert b"purge" not in out and b"\r" not in out and b'"read"' in out


def test_a_resumed_stream_filters_any_tool_list_by_its_shape() -> None:
    events = EventFilter(None, listed, status=200)
    out = events.feed(b"data: " + json.dumps(answer(77)).encode() + b"\n\n")
    assert json.loads(out.split(b"data: ", 1)[1])["result"]["tools"] == [TOOLS[0]]
    other = b'data: {"jsonrpc":"2.0","id":78,"result":{"content":[]}}\n\n'
    assert events.feed(other) == other


def test_comments_empty_data_and_an_unfinished_event() -> None:
    events = EventFilter([9], listed, status=200)
    assert (
        events.feed(b": ping\r\n\r\nid: 1\ndata:\n\ndata:  \n\n") == b": ping\n\nid: 1\ndata: \n\ndata:  \n\n"
    )
    assert events.feed(b"data: " + json.dumps(answer(9)).encode() + b"\n") == b""
    assert events.close() == b""  # no client dispatches an event without its blank line


@pytest.mark.parametrize("data", [b"not json", b'{"a": 1, "a": 2}', b"[NaN]"])
def test_event_data_no_strict_reader_reads_fails_closed(data: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        EventFilter([9], listed, status=200).feed(b"data: " + data + b"\n\n")


def test_a_non_200_stream_passes_events_without_a_tool_list_and_refuses_one_with() -> None:
    events = EventFilter([9], listed, status=201)
    assert events.feed(b"data: " + NOTE + b"\n\n") == b"data: " + NOTE + b"\n\n"
    with pytest.raises(UpstreamUnavailable):
        events.feed(b"data: " + json.dumps(answer(9)).encode() + b"\n\n")


def test_an_event_over_the_bound_fails_closed() -> None:
    events = EventFilter([9], listed, status=200)
    with pytest.raises(UpstreamUnavailable):
        events.feed(b"data: " + b"x" * MAX_EVENT_BYTES)


@pytest.mark.parametrize("tools", [None, "read", [{"title": "no name"}], ["read"]])
def test_a_listing_that_cannot_be_filtered_fails_closed(tools: object) -> None:
    with pytest.raises(UpstreamUnavailable):
        filter_json(json.dumps(answer(1, tools)).encode(), [1], listed, status=200)
    with pytest.raises(UpstreamUnavailable):
        EventFilter([1], listed, status=200).feed(b"data: " + json.dumps(answer(1, tools)).encode() + b"\n\n")
