"""An aiohttp upstream on 127.0.0.1 running in a thread of its own.

For tests whose own thread blocks (docker subprocesses, plain sockets): the upstream keeps
serving meanwhile. `/slow` holds its answer until the test sets `slow_release`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")


class ThreadedUpstream:
    def __init__(self) -> None:
        self.url = ""
        self.slow_arrived = threading.Event()
        self.slow_release = threading.Event()
        self._paths: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="upstream", daemon=True)
        self._runner: web.AppRunner | None = None

    def paths(self) -> list[str]:
        """Every path the upstream has received, in order."""
        with self._lock:
            return list(self._paths)

    def __enter__(self) -> ThreadedUpstream:
        self._thread.start()
        self.url = self._call(self._start())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.slow_release.set()
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._call(self._loop.shutdown_default_executor())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def _call(self, coroutine: Coroutine[object, object, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_get("/slow", self._slow)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def _record(self, request: web.Request) -> None:
        with self._lock:
            self._paths.append(request.path)

    async def _echo(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.json_response({"path": request.path})

    async def _slow(self, request: web.Request) -> web.Response:
        self._record(request)
        self.slow_arrived.set()
        # A threading.Event wait would stall this loop; wait on an executor thread instead.
        await asyncio.get_running_loop().run_in_executor(None, self.slow_release.wait, 120)
        return web.json_response({"path": request.path})
