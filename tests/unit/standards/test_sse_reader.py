"""Server-sent events read as the WHATWG standard reads them, whatever the chunking, and written back in one
form that reads as the same events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authproxy.standards.media import Unreadable
from authproxy.standards.sse import Event, EventReader, write_event


def read(stream: bytes, size: int | None = None, max_event: int = 1 << 20) -> list[Event]:
    reader = EventReader(max_event)
    step = size or max(len(stream), 1)
    events = [e for i in range(0, len(stream), step) for e in reader.feed(stream[i : i + step])]
    reader.close()
    return events


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"], ids=["lf", "cr", "crlf"])
@pytest.mark.parametrize("size", [1, 2, 3, None])
def test_every_line_end_frames_the_same_events(end: bytes, size: int | None) -> None:
    stream = end.join([b"event: message", b"data: one", b"data: two", b"", b"data: three", b"", b""])
    assert read(stream, size) == [Event("one\ntwo", "message"), Event("three")]


def test_mixed_line_ends_and_a_crlf_blank_line_end_the_event() -> None:
    # LF lines with a CRLF blank line: one event, as every conforming client reads it.
    assert read(b'id: 1\ndata: {"a":1}\n\r\ndata: 2\r\rdata: 3\r\n\n') == [
        Event('{"a":1}', id="1"),
        Event("2"),
        Event("3"),
    ]


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    reader = EventReader(1024)
    assert reader.feed(b"data: a\r") == []
    assert reader.feed(b"\ndata: b\r") == []  # had the LF ended a second line, "a" would be an event alone
    assert reader.feed(b"\n") == []
    assert reader.feed(b"\r\n") == [Event("a\nb")]


def test_a_cr_then_an_empty_chunk_then_lf_is_still_one_line_end() -> None:
    reader = EventReader(1024)
    assert reader.feed(b"data: a\r") + reader.feed(b"") + reader.feed(b"\ndata: b\n\n") == [Event("a\nb")]


@pytest.mark.parametrize("size", [1, 2, None])
def test_a_leading_byte_order_mark_is_dropped_once(size: int | None) -> None:
    assert read(b"\xef\xbb\xbfdata: x\n\n", size) == [Event("x")]
    # Only the first: a second mark is part of the field name, which no field then matches.
    assert read(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", size) == []
    assert read(b"data: x\n\n\xef\xbb\xbfdata: y\n\n", size) == [Event("x")]


def test_a_stream_shorter_than_a_byte_order_mark_is_still_read() -> None:
    reader = EventReader(1024)
    assert reader.feed(b"\xef") == []
    assert reader.feed(b"\n") == []  # not a mark after all: the byte is a line, the LF its end
    assert reader.feed(b"data\n\n") == [Event("")]


def test_field_values_lose_one_leading_space_only() -> None:
    assert read(b"data:  two spaces\ndata:none\nevent:  x\n\n") == [Event(" two spaces\nnone", " x")]


def test_a_line_without_colon_names_a_field_with_an_empty_value() -> None:
    assert read(b"data\ndata\n\n") == [Event("\n")]
    assert read(b"data\n\n") == [Event("")]


def test_comments_unknown_and_invalid_fields() -> None:
    stream = b": keep-alive\n\n:x\nid: a\x00b\nretry: 1s\nretry: 300\nDATA: no\nfoo: bar\ndata: d\n\n"
    assert read(stream) == [Event(comments=(" keep-alive",)), Event("d", retry="300", comments=("x",))]


def test_blank_lines_alone_are_no_event() -> None:
    assert read(b"\n\n\r\n\r") == []


def test_an_unfinished_block_at_the_end_is_discarded() -> None:
    assert read(b"data: whole\n\ndata: half\n") == [Event("whole")]


def test_invalid_utf8_reads_as_replacement_characters() -> None:
    assert read(b"data: a\xffb\xe2\x82\n\n") == [Event("a\ufffdb\ufffd")]


def test_an_event_over_the_bound_is_refused_held_or_pending() -> None:
    reader = EventReader(16)
    assert reader.feed(b"data: 0123\n\n") == [Event("0123")]  # each event counted on its own
    with pytest.raises(Unreadable):
        reader.feed(b"data: 01234567\ndata: 0123")  # 14 held + 10 pending
    with pytest.raises(Unreadable):
        EventReader(16).feed(b"data: 0123456789abc")  # one line, no end yet


def test_the_writer_uses_lf_and_one_form_per_field() -> None:
    event = Event('{"a":1}\n2', "message", "7", "100", ("ping",))
    assert write_event(event) == b':ping\nevent: message\nid: 7\nretry: 100\ndata: {"a":1}\ndata: 2\n\n'
    assert write_event(Event("")) == b"data: \n\n"


@pytest.mark.parametrize(
    "event",
    [
        Event("a\rb"),
        Event("a", event="x\ny"),
        Event("a", id="1\x002"),
        Event("a", retry="1s"),
        Event(comments=("\r",)),
    ],
)
def test_the_writer_refuses_what_would_read_back_otherwise(event: Event) -> None:
    with pytest.raises(ValueError):
        write_event(event)


_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=8)
_events = st.builds(
    Event,
    data=st.none() | st.lists(_text, min_size=1, max_size=3).map("\n".join),
    event=st.none() | _text,
    id=st.none() | _text.filter(lambda t: "\0" not in t),
    retry=st.none() | st.integers(0, 10**6).map(str),
    comments=st.lists(_text, max_size=2).map(tuple),
).filter(lambda e: e != Event())


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=4), st.integers(1, 9))
def test_what_is_written_reads_back_as_written_whatever_the_chunks(events: list[Event], size: int) -> None:
    stream = b"".join(write_event(e) for e in events)
    assert read(stream, size) == events


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=60)
    | st.lists(st.sampled_from([b"\r", b"\n", b"data", b":", b" x", b"\xef\xbb\xbf"])).map(b"".join),
    st.integers(1, 7),
)
def test_any_chunking_reads_the_same_events_and_they_write_back_as_read(stream: bytes, size: int) -> None:
    whole = read(stream)
    assert read(stream, size) == whole
    assert read(b"".join(write_event(e) for e in whole)) == whole
