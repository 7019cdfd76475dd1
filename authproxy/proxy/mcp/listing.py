"""`tools/list` answers cut down to the tools the caller may call, in a JSON body or an SSE stream.

Only the answers to the `tools/list` requests of the POST (matched by JSON-RPC id) are cut; a resumed stream
(GET with Last-Event-ID) may replay answers to earlier POSTs whose ids we no longer know: there (`ids` None)
every answer whose result carries a tool list is cut. Everything is read as the client reads it and sent as
we re-encode it: JSON strictly (standards.json_text), SSE as the WHATWG standard frames it (standards.sse:
CR, LF or CRLF line ends, a leading byte-order mark); every event and every JSON answer that passes is
written anew, so the client reads exactly what was checked. Anything we cannot read with certainty fails
closed: UpstreamUnavailable (502 before the head, an abort after it), never an unfiltered listing. An answer
other than 200 is not cut: it passes only when it holds no tool list. A cut list says `cacheScope:
"private"` (2026-07-28 caching), whatever the upstream said: it is one caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from authproxy.errors import UpstreamUnavailable
from authproxy.proxy.listings import nothing_to_filter, read_answer
from authproxy.proxy.mcp.results import ResultCut
from authproxy.standards.json_text import write_json
from authproxy.standards.media import Unreadable
from authproxy.standards.sse import Event, EventReader, write_event

__all__ = ["MAX_EVENT_BYTES", "EventFilter", "filter_json"]

MAX_EVENT_BYTES = 8 * 1024 * 1024  # one JSON answer or one SSE event held to be filtered
_JSON_SPACE = " \t\r\n"

Listed = Callable[[str], bool]
_NONE: Mapping[object, ResultCut] = MappingProxyType({})


def _filter_message(message: Any, ids: Collection[object] | None, listed: Listed) -> None:
    """Cut one answer in place if it answers one of `ids` (None: any answer carrying a tool list)."""
    if not isinstance(message, dict) or "result" not in message:
        return
    result = message["result"]
    tools = result.get("tools") if isinstance(result, dict) else None
    if ids is None and not isinstance(tools, list):
        return
    if ids is not None and message.get("id") not in ids:
        return
    if not isinstance(tools, list):
        raise UpstreamUnavailable("the tools/list answer has no tool list and cannot be filtered")
    kept = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise UpstreamUnavailable("a tools/list entry has no name and cannot be filtered")
        if listed(tool["name"]):
            kept.append(tool)
    result["tools"] = kept
    # Caching ("Cache Scope Field"): the list is now this caller's; an upstream's "public" would let a
    # client or shared cache serve it to another authorization context.
    result["cacheScope"] = "private"


def _cut_result(message: Any, results: Mapping[object, ResultCut]) -> None:
    """Cut the result of a tools/call whose answer the upstream narrows per caller (results.py)."""
    if not isinstance(message, dict) or not results:
        return
    cut = results.get(message.get("id")) if isinstance(message.get("id"), str | int) else None
    if cut is not None and "result" in message:
        cut(message["result"])


def _holds_cut(document: Any, results: Mapping[object, ResultCut]) -> bool:
    """Whether `document` holds a tool list, or a result of one of the calls in `results`."""
    messages = document if isinstance(document, list) else [document]
    answers = any(
        isinstance(m, dict) and "result" in m and isinstance(m.get("id"), str | int) and m["id"] in results
        for m in messages
    )
    return answers or _holds_tools(document)


def _holds_tools(document: Any) -> bool:
    """Whether any message of `document` (one or a batch) carries a result with tools."""
    messages = document if isinstance(document, list) else [document]
    return any(
        isinstance(m, dict) and isinstance(m.get("result"), dict) and "tools" in m["result"] for m in messages
    )


def _filtered(
    document: Any,
    ids: Collection[object] | None,
    listed: Listed,
    status: int,
    results: Mapping[object, ResultCut],
) -> bytes:
    if status != 200 and _holds_cut(document, results):
        raise UpstreamUnavailable("an MCP answer other than 200 holds a tool list or a result to cut")
    for message in document if isinstance(document, list) else [document]:
        _filter_message(message, ids, listed)
        _cut_result(message, results)
    return write_json(document)


def filter_json(
    body: bytes,
    ids: Collection[object] | None,
    listed: Listed,
    *,
    status: int,
    results: Mapping[object, ResultCut] = _NONE,
) -> bytes:
    """A JSON answer (one message or a batch) with its tools/list results cut, and the results of the
    calls in `results` (by JSON-RPC id) cut by theirs, re-encoded.

    An answer other than 200 passes as it came when it holds nothing to cut, and is refused when it does.
    """
    if status != 200:
        return nothing_to_filter(body, lambda document: _holds_cut(document, results), "the MCP answer")
    return _filtered(read_answer(body, "the MCP answer"), ids, listed, status, results)


class EventFilter:
    """Feed SSE bytes as they come; get back bytes to send: whole events only, each one re-encoded."""

    __slots__ = ("_ids", "_listed", "_reader", "_results", "_status")

    def __init__(
        self,
        ids: Collection[object] | None,
        listed: Listed,
        *,
        status: int,
        results: Mapping[object, ResultCut] = _NONE,
    ) -> None:
        self._reader = EventReader(MAX_EVENT_BYTES)
        self._ids = ids
        self._listed = listed
        self._status = status
        self._results = results

    def feed(self, chunk: bytes) -> bytes:
        try:
            events = self._reader.feed(chunk)
        except Unreadable as bad:
            raise UpstreamUnavailable(f"{bad.reason}; it cannot be filtered") from bad
        return b"".join(self._event(event) for event in events)

    def close(self) -> bytes:
        """The end of the stream: an event without its blank line is dropped, as every client drops it."""
        self._reader.close()
        return b""

    def _event(self, event: Event) -> bytes:
        if event.data is not None and event.data.strip(_JSON_SPACE):
            # Every message an MCP client reads is JSON: data no strict reader reads is refused, not passed.
            document = read_answer(event.data.encode("utf-8"), "an MCP event")
            data = _filtered(document, self._ids, self._listed, self._status, self._results)
            event = replace(event, data=data.decode("utf-8"))
        return write_event(event)
