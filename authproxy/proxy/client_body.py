"""A client's request body as it arrives on the proxied port: buffered up to a bound, read by one reader.

The connection feeds it what its parser delivers; the relay (or a bounded whole read) takes it. Past
HIGH_WATER bytes buffered, the connection stops reading the socket until the reader has caught up: a
large upload passes at constant memory, however slow the upstream takes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

__all__ = ["HIGH_WATER", "BodyStream"]

HIGH_WATER = 256 * 1024  # bytes buffered before the socket is no longer read


class BodyStream:
    """One request's body. `hold(True)` is called when the buffer is over HIGH_WATER, `hold(False)` when the
    reader has drained it again."""

    __slots__ = (
        "_buffer",
        "_dropping",
        "_eof",
        "_error",
        "_held",
        "_hold",
        "_size",
        "_waiter",
        "total_bytes",
    )

    def __init__(self, hold: Callable[[bool], None]) -> None:
        self._buffer: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._hold = hold
        self._held = False
        self._dropping = False
        self.total_bytes = 0  # what the reader has taken: non-zero means the request is no longer whole

    # --- the connection's side ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._dropping:
            return
        self._buffer.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._held:
            self._held = True
            self._hold(True)
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The connection broke before the body was whole: the reader gets `error`."""
        if not self._eof:
            self._error = error
            self._wake()

    @property
    def complete(self) -> bool:
        """Every byte of the body has arrived (some may still be unread)."""
        return self._eof

    def discard(self) -> None:
        """Nobody will read the rest: what is buffered goes, and so does what arrives."""
        self._dropping = True
        self._buffer.clear()
        self._size = 0
        if self._held:
            self._held = False
            self._hold(False)

    # --- the reader's side --------------------------------------------------------------------------------

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    async def readany(self) -> bytes:
        """All that has arrived, at least one byte; b"" at the end of the body."""
        while not self._buffer:
            if self._eof:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        buffer = self._buffer
        data = buffer.popleft() if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        self._taken(len(data))
        return data

    async def read(self, limit: int) -> bytes:
        """At most `limit` bytes (at least one, b"" at the end)."""
        data = await self.readany()
        if len(data) > limit:
            self._buffer.appendleft(data[limit:])
            self._size += len(data) - limit
            self.total_bytes -= len(data) - limit
            data = data[:limit]
        return data

    def _taken(self, n: int) -> None:
        self._size -= n
        self.total_bytes += n
        if self._held and self._size <= HIGH_WATER // 2:
            self._held = False
            self._hold(False)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
