"""Server-sent events read as the WHATWG HTML standard's parser reads them, and written canonically.

The standard ("Server-sent events", parsing an event stream) lets a stream end its lines with CR, LF or
CRLF, start with a UTF-8 byte-order mark, name a field without a colon, and send comments. Every client that
follows it (browsers' EventSource, the MCP SDKs' SSE readers) finds the same events in such a stream; a
filter that splits only on LF, or keeps a BOM on the first field name, finds others, and passes what the
client then reads. So `EventReader` reads exactly as the standard says, and `write_event` writes an event
back in one form only (LF line ends, `field: value` lines, no BOM): what a proxy forwards after reading is
what every client reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authproxy.standards.media import Unreadable

__all__ = ["Event", "EventReader", "write_event"]

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    """One block of the stream up to its blank line, as the standard's fields leave it.

    `data` is the data buffer as dispatched (its lines joined with LF), None when the block had no data
    field; `event`, `id` and `retry` are the last valid value of each field (an `id` holding NUL and a
    `retry` that is not all ASCII digits are ignored, as the standard says); `comments` are the texts of
    the comment lines, kept so keep-alives still flow.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: str | None = None
    comments: tuple[str, ...] = ()


class EventReader:
    """Feed the stream's bytes as they come; get back each event once its blank line has arrived.

    A block is held until its blank line, at most `max_event` bytes of it (Unreadable beyond). At the end
    of the stream an unfinished block is discarded: the standard dispatches no event without its blank line.
    """

    __slots__ = (
        "_comments",
        "_data",
        "_event",
        "_held",
        "_id",
        "_max",
        "_pending",
        "_retry",
        "_scan",
        "_skip_lf",
        "_started",
    )

    def __init__(self, max_event: int) -> None:
        self._max = max_event
        self._pending = bytearray()  # bytes of the line not yet ended
        self._scan = 0  # where the search for a line end resumes in _pending
        self._started = False  # the leading byte-order mark has been looked for
        self._skip_lf = False  # the last line ended with a CR: an LF first in the next chunk belongs to it
        self._held = 0  # bytes of the current block's finished lines
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] | None = None
        self._event: str | None = None
        self._id: str | None = None
        self._retry: str | None = None
        self._comments: list[str] = []
        self._held = 0

    def feed(self, chunk: bytes) -> list[Event]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        self._pending += chunk
        if not self._started:
            if len(self._pending) < len(_BOM) and _BOM.startswith(self._pending):
                return []  # perhaps the start of a byte-order mark: wait for the rest
            self._started = True
            if self._pending.startswith(_BOM):
                del self._pending[: len(_BOM)]
        events: list[Event] = []
        start = 0
        scan = self._scan  # what came before holds no line end: a long line is not searched again
        while (end := _LINE_END.search(self._pending, scan)) is not None:
            event = self._line(bytes(self._pending[start : end.start()]))
            if event is not None:
                events.append(event)
            start = scan = end.end()
            if end.group() == b"\r" and start == len(self._pending):
                self._skip_lf = True  # a CRLF split between two chunks is one line end
        del self._pending[:start]
        self._scan = len(self._pending)
        if self._held + len(self._pending) > self._max:
            raise Unreadable(f"an event of the stream is larger than {self._max} bytes")
        return events

    def close(self) -> None:
        """The end of the stream: whatever block is unfinished is discarded, as a client discards it."""
        self._pending.clear()
        self._scan = 0
        self._reset()

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            return self._dispatch()
        self._held += len(raw)
        # The standard decodes the whole stream with U+FFFD for bad bytes; line ends are single bytes that
        # never sit inside a UTF-8 sequence, so decoding each line alike finds the same characters.
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            self._comments.append(line[1:])
            return None
        name, _, value = line.partition(":")  # no colon: the whole line names the field, its value is empty
        value = value.removeprefix(" ")
        if name == "data":
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = value
        return None

    def _dispatch(self) -> Event | None:
        event = Event(
            None if self._data is None else "\n".join(self._data),
            self._event,
            self._id,
            self._retry,
            tuple(self._comments),
        )
        self._reset()
        return None if event == _NOTHING else event


_NOTHING = Event()


def write_event(event: Event) -> bytes:
    """The event as `:comment`, `event:`, `id:`, `retry:` and `data:` lines, LF-ended, then a blank line.

    Raises ValueError for a value no reader could read back as written (a line break; NUL in an id).
    """
    lines = [":" + _one_line(text) for text in event.comments]
    if event.event is not None:
        lines.append("event: " + _one_line(event.event))
    if event.id is not None:
        if "\0" in event.id:
            raise ValueError("an event id holds NUL, which readers ignore")
        lines.append("id: " + _one_line(event.id))
    if event.retry is not None:
        if not (event.retry.isascii() and event.retry.isdigit()):
            raise ValueError("an event's retry is not ASCII digits")
        lines.append("retry: " + event.retry)
    if event.data is not None:
        lines.extend("data: " + _one_line(line) for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _one_line(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError("an event field holds a line break")
    return text
