"""`authproxy demo`: starts, prints tokens and curl lines, and every line answers the status it promises."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.rigs.serve import AUTHPROXY

REPO = Path(__file__).resolve().parents[2]


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


@asynccontextmanager
async def running_demo(
    command: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[Demo]:
    """`COMMAND demo ARGS…` until it prints its last instruction line; killed and reaped on the way out."""
    process = await asyncio.create_subprocess_exec(
        command,
        "demo",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "Ctrl-C to stop.":  # the demo announces that it is serving
            raw = await process.stdout.readline()
            assert raw, f"authproxy demo ended early: {lines}"
            lines.append(raw.decode().rstrip("\n"))
        yield Demo(process, lines)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    async with running_demo(AUTHPROXY, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0") as running:
        yield running


async def answers_as_promised(demo: Demo) -> None:
    """Every curl line the demo printed, sent with the tokens it exported, answers the status it names."""
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


async def test_demo_curl_lines_answer_the_promised_statuses(demo: Demo) -> None:
    await answers_as_promised(demo)


async def test_demo_stops_cleanly_on_sigterm(demo: Demo) -> None:
    demo.process.terminate()
    assert await demo.process.wait() == 0


# What the image's build context holds (.dockerignore) is what a wheel is built from: the package,
# pyproject.toml and README.md. Nothing else of the checkout may be needed to run the demo.
_SHIPPED = ("pyproject.toml", "README.md", "authproxy")


def _install(source: Path, venv: Path) -> None:
    """A fresh venv with the package built from `source`: from uv's cache when it has every wheel."""
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([uv, "venv", "-q", venv], check=True, timeout=120)
    install: list[str | Path] = [uv, "pip", "install", "-q", "--python", venv / "bin" / "python", source]
    if subprocess.run([*install, "--offline"], check=False, timeout=300).returncode != 0:
        subprocess.run(install, check=True, timeout=600)


async def test_demo_runs_from_an_installed_package_in_an_empty_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in _SHIPPED:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    venv = tmp_path / "venv"
    await asyncio.to_thread(_install, source, venv)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AUTHPROXY_", "VIRTUAL_ENV"))}
    env.update(AUTHPROXY_DEMO_LISTEN="127.0.0.1:0", AUTHPROXY_DEMO_ADMIN_LISTEN="127.0.0.1:0")
    async with running_demo(str(venv / "bin" / "authproxy"), env=env, cwd=empty) as demo:
        await answers_as_promised(demo)
    assert not any(empty.iterdir())
