"""One request and its answer on one pooled upstream connection (proxy/upstream.py owns the connection).

The connection's parser callbacks feed the exchange (`set_head`, `push`, `finish`, `fail`); the relay reads
from it (`response_head`, `read`, `read_nowait`) and gives the connection back with `release`, which pools
it only when the exchange ended cleanly. Waiting is bounded by the read timeout: the longest gap between
bytes from the upstream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

from authproxy.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["Broken", "Exchange"]

_HIGH_WATER = 512 * 1024  # response bytes buffered before the upstream socket stops being read
_NO_BODY_STATUSES = frozenset({204, 304})

RawHeaders = list[tuple[str, str]]


class Broken(Exception):
    """The upstream connection ended or misbehaved mid-exchange; the reader sees an UpstreamUnavailable."""


class _Connection(Protocol):
    def resume_reading(self) -> None: ...

    def end(self, reusable: bool, *, reset_parser: bool = False) -> bool: ...


class Exchange:
    """One request and its answer on one connection. Created by UpstreamPool.send."""

    __slots__ = (
        "_body_waiter",
        "_buffered",
        "_chunks",
        "_conn",
        "_error",
        "_give_back",
        "_head_waiter",
        "_keep_alive",
        "_loop",
        "_read_timeout",
        "_released",
        "_timer",
        "close_delimited",
        "complete",
        "head",
        "head_only",
        "last_data",
        "raw_headers",
        "reason",
        "request_sent",
    )

    def __init__(
        self,
        give_back: Callable[[], None],
        conn: _Connection,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        head_only: bool,
    ) -> None:
        self._give_back = give_back  # pools the connection
        self._conn = conn
        self._loop = loop
        self._read_timeout = read_timeout
        self.head_only = head_only  # an answer to HEAD has no body, whatever its length says
        self.head: int | None = None  # the status, once the answer's head arrived
        self.reason = ""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.close_delimited = False
        self.request_sent = False
        self.last_data = loop.time()
        self._keep_alive = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._head_waiter: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    # --- events from the connection -----------------------------------------------------------------------

    def interim(self) -> None:
        self.reason = ""
        self.raw_headers.clear()

    def set_head(self, status: int, keep_alive: bool) -> None:
        self.head = status
        self._keep_alive = keep_alive
        if self.head_only or status in _NO_BODY_STATUSES:
            self.finish()
        else:
            self.close_delimited = not any(
                name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.raw_headers
            )
        _wake(self._head_waiter)

    def push(self, body: bytes) -> bool:
        """Queue body bytes; True when the buffer is full and the upstream should stop being read."""
        self._chunks.append(body)
        self._buffered += len(body)
        _wake(self._body_waiter)
        return self._buffered >= _HIGH_WATER

    def finish(self) -> None:
        self.complete = True
        _wake(self._head_waiter)
        _wake(self._body_waiter)

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        _wake(self._head_waiter)
        _wake(self._body_waiter)

    # --- the caller's side --------------------------------------------------------------------------------

    async def response_head(self) -> tuple[int, str, RawHeaders]:
        """Wait for the answer's head: (status, reason, headers). Raises UpstreamError."""
        while self.head is None:
            self._raise_pending()
            self._head_waiter = self._loop.create_future()
            await self._wait(self._head_waiter)
        headers = [(n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in self.raw_headers]
        return self.head, self.reason, headers

    def read_nowait(self) -> bytes:
        """Every body byte that has arrived, without waiting (b"" when none)."""
        if not self._chunks:
            return b""
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self._buffered >= _HIGH_WATER:
            self._conn.resume_reading()
        self._buffered = 0
        return data

    def at_eof(self) -> bool:
        return self.complete and not self._chunks

    async def read(self) -> bytes:
        """The next body bytes; b"" at the end of the body. Raises UpstreamError when the upstream fails."""
        while not self._chunks:
            if self.complete:
                return b""
            self._raise_pending()
            self._body_waiter = self._loop.create_future()
            await self._wait(self._body_waiter)
        return self.read_nowait()

    def release(self) -> None:
        """Give the connection back: pooled when the exchange ended cleanly, closed otherwise."""
        if self._released:
            return
        self._released = True
        reusable = self.complete and self.request_sent and self._keep_alive and self._error is None
        if self._conn.end(reusable, reset_parser=self.head_only):
            self._give_back()

    # --- internals ----------------------------------------------------------------------------------------

    def _raise_pending(self) -> None:
        if self._error is not None:
            error = self._error
            if isinstance(error, UpstreamError):
                raise error
            raise UpstreamUnavailable(str(error)) from error

    async def _wait(self, waiter: asyncio.Future[None]) -> None:
        if self._read_timeout is not None:
            self._arm(waiter)
        try:
            await waiter
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self, waiter: asyncio.Future[None]) -> None:
        assert self._read_timeout is not None
        due = self.last_data + self._read_timeout
        self._timer = self._loop.call_at(due, self._check_idle, waiter)

    def _check_idle(self, waiter: asyncio.Future[None]) -> None:
        # Re-armed from the last byte's time rather than reset on every byte: no timer churn per chunk.
        assert self._read_timeout is not None
        if waiter.done():
            return
        if self._loop.time() - self.last_data >= self._read_timeout:
            self.fail(UpstreamTimeout("the upstream did not answer in time"))
            self._conn.end(False)
        else:
            self._arm(waiter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
