"""BodyStream: a client's body between the connection that feeds it and the one reader that takes it."""

from __future__ import annotations

import asyncio

import pytest

from authproxy.proxy.client_body import HIGH_WATER, BodyStream


class Holds:
    """What the stream asked of the connection: True = stop reading, False = read again."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def __call__(self, on: bool) -> None:
        self.calls.append(on)


async def test_reader_gets_what_was_fed_then_the_end() -> None:
    body = BodyStream(Holds())
    body.feed(b"he")
    body.feed(b"llo")
    assert await body.readany() == b"hello"  # what has arrived, in one piece
    body.feed_eof()
    assert await body.readany() == b""
    assert body.at_eof() and body.complete
    assert body.total_bytes == 5


async def test_read_takes_at_most_its_limit_and_keeps_the_rest() -> None:
    body = BodyStream(Holds())
    body.feed(b"abcdef")
    body.feed_eof()
    assert await body.read(4) == b"abcd"
    assert body.total_bytes == 4
    assert await body.read(4) == b"ef"
    assert await body.read(4) == b""


async def test_reader_waits_for_bytes() -> None:
    body = BodyStream(Holds())
    waiting = asyncio.ensure_future(body.readany())
    await asyncio.sleep(0)
    assert not waiting.done()
    body.feed(b"x")
    assert await waiting == b"x"


async def test_a_full_buffer_stops_reading_until_the_reader_catches_up() -> None:
    holds = Holds()
    body = BodyStream(holds)
    body.feed(b"a" * HIGH_WATER)
    assert holds.calls == []
    body.feed(b"a")
    assert holds.calls == [True]
    body.feed(b"a" * 10)  # already held: asked once
    assert holds.calls == [True]
    await body.readany()
    assert holds.calls == [True, False]


async def test_a_broken_body_fails_the_reader() -> None:
    body = BodyStream(Holds())
    body.feed(b"part")
    body.fail(ConnectionResetError("gone"))
    assert await body.readany() == b"part"  # what came before the break is still read
    with pytest.raises(ConnectionResetError):
        await body.readany()


async def test_a_body_that_ended_cannot_fail() -> None:
    body = BodyStream(Holds())
    body.feed_eof()
    body.fail(ConnectionResetError("late"))
    assert await body.readany() == b""


async def test_discard_drops_what_is_buffered_and_what_comes() -> None:
    holds = Holds()
    body = BodyStream(holds)
    body.feed(b"a" * (HIGH_WATER + 1))
    body.discard()
    assert holds.calls == [True, False]  # nobody will read it: reading resumes
    body.feed(b"more")
    body.feed_eof()
    assert await body.readany() == b""
