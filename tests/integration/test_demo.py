"""`authproxy demo`: starts, prints tokens and curl lines, and every line answers the status it promises."""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.rigs.serve import AUTHPROXY


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str]
    data: str | None
    expected: int


def parse_curl(line: str, exports: dict[str, str]) -> Curl:
    command, expected = line.split("# ->")
    words = shlex.split(command)
    method, headers, data, url = "GET", {}, None, ""
    args = iter(words[1:])
    for word in args:
        if word == "-X":
            method = next(args)
        elif word == "-H":
            name, value = next(args).split(": ", 1)
            for var, token in exports.items():
                value = value.replace(f"${var}", token)
            headers[name] = value
        elif word == "-d":
            data = next(args)
        elif not word.startswith("-"):
            url = word
    return Curl(method, url, headers, data, int(expected))


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    lines: list[str]


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    env = {**os.environ, "AUTHPROXY_DEMO_LISTEN": "127.0.0.1:0", "AUTHPROXY_DEMO_ADMIN_LISTEN": "127.0.0.1:0"}
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY, "demo", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Ctrl-C to stop.":  # the demo announces that it is serving
        raw = await process.stdout.readline()
        assert raw, f"authproxy demo ended early: {lines}"
        lines.append(raw.decode().rstrip("\n"))
    yield Demo(process, lines)
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_demo_curl_lines_answer_the_promised_statuses(demo: Demo) -> None:
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in demo.lines if line.startswith("export ")
    )
    assert set(exports) == {"ADMIN_TOKEN", "READER_TOKEN", "RUNNER_TOKEN"}
    curls = [parse_curl(line, exports) for line in demo.lines if line.startswith("curl ")]
    assert {c.expected for c in curls} == {200, 401, 403}
    async with aiohttp.ClientSession() as client:
        for curl in curls:
            form = None if curl.data is None else dict([curl.data.split("=", 1)])
            async with client.request(curl.method, curl.url, headers=curl.headers, data=form) as resp:
                body = await resp.read()
                assert resp.status == curl.expected, (curl, body)
                if curl.url.endswith("/runs") and resp.status == 200:
                    assert resp.headers["Content-Type"].startswith("text/event-stream")
                    assert b"event: RunCompleted" in body
                    assert b"from demo-runner" in body  # the identity header the proxy set


async def test_demo_stops_cleanly_on_sigterm(demo: Demo) -> None:
    demo.process.terminate()
    assert await demo.process.wait() == 0
