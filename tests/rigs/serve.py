"""The proxy under test as `authproxy serve` in a subprocess: its JSON log lines collected as they come, and
its ports read from its `listening` line, so nothing guesses when it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

AUTHPROXY = str(Path(sys.executable).with_name("authproxy"))


class LogLines:
    """The JSON lines a subprocess prints, collected as they come; `wait_for` wakes on each new line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.ended = False
        self._changed = asyncio.Condition()

    async def collect(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            with contextlib.suppress(json.JSONDecodeError):
                parsed = json.loads(line)
                async with self._changed:
                    self.lines.append(parsed)
                    self._changed.notify_all()
        async with self._changed:
            self.ended = True
            self._changed.notify_all()

    def find(self, event: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line.get("event") == event), None)

    async def wait_for(self, event: str) -> dict[str, Any]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.ended or self.find(event) is not None)
        found = self.find(event)
        assert found is not None, f"the process ended without logging {event!r}"
        return found


@dataclass
class ServeProcess:
    process: asyncio.subprocess.Process
    log: LogLines
    url: str = ""
    admin_url: str = ""
    stderr: bytes = b""

    def rss_kib(self, field_name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field_name} not in /proc/{self.process.pid}/status")

    async def finish(self) -> int:
        """Wait for the exit; the code, with stdout fully collected."""
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()
        return await self.process.wait()


class ServeFactory(Protocol):
    async def __call__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess: ...


@asynccontextmanager
async def serve_processes() -> AsyncIterator[ServeFactory]:
    """`start(config, *args, env=…)` runs `authproxy serve -c CONFIG ARGS…` and returns once it logged
    `listening`; every process still running when the block ends is killed and reaped."""
    running: list[tuple[ServeProcess, asyncio.Task[None]]] = []

    async def start(config: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        process = await asyncio.create_subprocess_exec(
            AUTHPROXY,
            "serve",
            "-c",
            str(config),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "AUTHPROXY_WORKERS": "1", **(env or {})},  # one process unless a test asks
        )
        assert process.stdout is not None
        proc = ServeProcess(process, LogLines())
        # Keep reading for the whole run: a full pipe would block the proxy's log writes.
        running.append((proc, asyncio.create_task(proc.log.collect(process.stdout))))
        listening = await proc.log.wait_for("listening")
        proc.url = f"http://{listening['proxy']}"
        proc.admin_url = f"http://{listening['admin']}"
        return proc

    try:
        yield start
    finally:
        for proc, reader in running:
            if proc.process.returncode is None:
                proc.process.kill()
            await proc.process.wait()
            await reader
