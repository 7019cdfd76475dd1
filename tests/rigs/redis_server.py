"""A real redis-server for the rate-limit tests: loopback only, no persistence, stopped by its fixture.

`stop()` and `start()` restart it on the same port (the proxy's URL stays valid); readiness is its own
"Ready to accept connections" line, never a guessed wait.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest

READY = b"Ready to accept connections"


def redis_server_binary() -> str:
    """The redis-server path; skip where it may be absent, fail under CI=true (make tools installs it)."""
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server not found (scripts/install-tools.sh installs it with apt-get)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true: tools must be installed by `make tools`", pytrace=False)
        pytest.skip(message)
    return found


def _free_port() -> int:
    # redis-server cannot report a port it chose itself (--port 0 turns TCP off), so the OS picks one
    # here and the server takes it at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        assert self._process is None
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._process = process
        assert process.stdout is not None
        seen = b""
        async with asyncio.timeout(20):
            while READY not in seen:
                line = await process.stdout.readline()
                if not line:
                    raise AssertionError(f"redis-server exited before it was ready:\n{seen.decode()}")
                seen += line
        self._drain = asyncio.create_task(self._read_rest(process.stdout))

    @staticmethod
    async def _read_rest(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.kill()
        await process.wait()
        if self._drain is not None:
            await self._drain
            self._drain = None
