"""`tools/list` answers cut down to the tools the caller may call, in a JSON body or an SSE stream.

Only the answers to the `tools/list` requests of the POST (matched by JSON-RPC id) are rewritten; every
other message passes as it came. A resumed stream (GET with Last-Event-ID) may replay answers to earlier
POSTs whose ids we no longer know: there (`ids` None) every answer whose result carries a tool list is
filtered. Anything we cannot filter with certainty fails closed: a listing that
is not an object list of named tools raises UpstreamUnavailable (502 before the head, an abort after it),
so an unfiltered listing never reaches the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from typing import Any

from authproxy.errors import UpstreamUnavailable

__all__ = ["MAX_EVENT_BYTES", "EventFilter", "filter_json"]

MAX_EVENT_BYTES = 8 * 1024 * 1024  # one JSON answer or one SSE event held to be filtered
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n")
_LINE_END = re.compile(rb"\r\n|\n|\r")

Listed = Callable[[str], bool]


def _filter_message(message: Any, ids: Collection[object] | None, listed: Listed) -> bool:
    """Filter one answer in place if it answers one of `ids` (None: any tool list); True if it did."""
    if not isinstance(message, dict) or "result" not in message:
        return False
    result = message["result"]
    tools = result.get("tools") if isinstance(result, dict) else None
    if ids is None and not isinstance(tools, list):
        return False
    if ids is not None and message.get("id") not in ids:
        return False
    if not isinstance(tools, list):
        raise UpstreamUnavailable("the tools/list answer has no tool list and cannot be filtered")
    kept = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise UpstreamUnavailable("a tools/list entry has no name and cannot be filtered")
        if listed(tool["name"]):
            kept.append(tool)
    result["tools"] = kept
    return True


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def filter_json(body: bytes, ids: Collection[object] | None, listed: Listed) -> bytes:
    """A JSON answer (one message or a batch) with its tools/list results filtered."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as bad:
        raise UpstreamUnavailable("the MCP answer is not JSON and cannot be filtered") from bad
    messages = document if isinstance(document, list) else [document]
    changed = [_filter_message(m, ids, listed) for m in messages]
    return _dumps(document) if any(changed) else body


class EventFilter:
    """Feed SSE bytes as they come; get back bytes to send, whole events only, filtered where needed."""

    __slots__ = ("_buffer", "_ids", "_listed")

    def __init__(self, ids: Collection[object] | None, listed: Listed) -> None:
        self._buffer = bytearray()
        self._ids = ids
        self._listed = listed

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out = bytearray()
        start = 0
        while (end := _EVENT_END.search(self._buffer, start)) is not None:
            out += self._event(bytes(self._buffer[start : end.start()]), end.group())
            start = end.end()
        del self._buffer[:start]
        if len(self._buffer) > MAX_EVENT_BYTES:
            raise UpstreamUnavailable("an MCP event is too large to filter")
        return bytes(out)

    def close(self) -> bytes:
        """What is left when the stream ends: a last event without its blank line passes as it is."""
        rest, self._buffer = bytes(self._buffer), bytearray()
        return self._event(rest, b"") if rest.strip() else rest

    def _event(self, raw: bytes, end: bytes) -> bytes:
        lines = _LINE_END.split(raw)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return raw + end
        try:
            message = json.loads(b"\n".join(data))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return raw + end  # not JSON, so no client reads it as an answer
        if not _filter_message(message, self._ids, self._listed):
            return raw + end
        kept = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + _dumps(message)]) + b"\n\n"
