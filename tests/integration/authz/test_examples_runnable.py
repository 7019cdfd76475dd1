"""deploy/examples/authz/run.sh as a reader of the docs runs it: for each engine found here, the curl lines it
prints answer the statuses they promise, and however it stops (Ctrl-C, a plain kill, a part that dies) no
process it started is left behind, nor its files."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.rigs.authz_engines import EXAMPLES, find_engine

SCRIPT = EXAMPLES / "run.sh"
ENGINE_BINARY = {"envoy": "envoy", "envoy-grpc": "envoy", "nginx": "nginx", "traefik": "traefik"}
_START_TIMEOUT = 120.0  # three processes and an engine on a shared two-core machine
_STOP_TIMEOUT = 30.0  # the script allows its parts 10 s before it kills them
_EXPECT = re.compile(r"#\s*->\s*(\d{3})\s*$")


@dataclass(frozen=True)
class Curl:
    url: str
    headers: dict[str, str]
    expect: int


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    log: Path
    lines: list[str] = field(default_factory=list)
    started: set[tuple[int, str]] = field(default_factory=set)  # (pid, start time) of each descendant

    def curls(self) -> list[Curl]:
        return [parse_curl(line) for line in self.lines if line.startswith("curl ")]


def parse_curl(line: str) -> Curl:
    found = _EXPECT.search(line)
    assert found, f"no '# -> STATUS' on {line!r}"
    args = iter(shlex.split(line, comments=True)[1:])
    url, headers = "", {}
    for arg in args:
        if arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg.startswith("http://"):
            url = arg
        else:
            assert arg == "-i", f"unexpected curl argument {arg!r} on {line!r}"
    assert url, f"no URL on {line!r}"
    return Curl(url, headers, int(found[1]))


def send(curl: Curl) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(curl.url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path, headers=curl.headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# --- processes, read from /proc --------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, session, ...)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return None


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def _processes() -> dict[int, list[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = fields
    return found


def descendants(root: int) -> set[tuple[int, str]]:
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    seen, todo = set(), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        seen.add((pid, table[pid][19]))  # field 22 of stat: the start time, so a reused pid is not mistaken
        todo += children.get(pid, [])
    return seen


def still_running(started: set[tuple[int, str]], session: int) -> list[str]:
    table = _processes()
    left = [f"pid {pid}" for pid, since in started if pid in table and table[pid][19] == since]
    left += [f"pid {pid} in the session" for pid, fields in table.items() if int(fields[3]) == session]
    return left


# --- running the script -------------------------------------------------------------------------------


def _read_until_ready(run: Run) -> None:
    """Collect stdout until the script says how to stop it; bounded, and failing if it exits first."""
    assert run.process.stdout is not None
    buffered, deadline = b"", time.monotonic() + _START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(run.process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            chunk = os.read(run.process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffered += chunk
            run.lines = buffered.decode().splitlines()
            if "Ctrl-C to stop." in run.lines:
                return
    raise AssertionError(f"run.sh not ready (exit {run.process.poll()}):\n{run.log.read_text()[-4000:]}")


def _stop_wait(run: Run) -> int:
    try:
        return run.process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"run.sh still running:\n{run.log.read_text()[-4000:]}") from None


@contextlib.contextmanager
def running(engine: str, tmp: Path) -> Iterator[Run]:
    """run.sh ENGINE in a session of its own, with the test's venv and its temp files under `tmp`."""
    find_engine(ENGINE_BINARY[engine])  # skips (or fails under CI=true) where the engine is missing
    env = {**os.environ, "VENV": sys.prefix, "TMPDIR": str(tmp)}
    log = tmp / "run.sh.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            ["bash", str(SCRIPT), engine],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    run = Run(process, log)
    try:
        _read_until_ready(run)
        run.started = descendants(process.pid)
        yield run
    finally:
        if process.poll() is None:  # only when the test failed before stopping it itself
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def assert_all_gone(run: Run, tmp: Path) -> None:
    # upstream, authproxy and the engine at least (nginx adds its worker)
    assert len(run.started) >= 3, run.started
    assert still_running(run.started, run.process.pid) == []
    assert [p.name for p in tmp.iterdir() if p.name.startswith("try-authz.")] == []


# --- the tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", sorted(ENGINE_BINARY))
def test_printed_curl_lines_answer_as_promised_and_ctrl_c_stops_all(engine: str, tmp_path: Path) -> None:
    with running(engine, tmp_path) as run:
        curls = run.curls()
        assert sorted(c.expect for c in curls) == [200, 401, 403]
        for curl in curls:
            status, headers, body = send(curl)
            assert status == curl.expect, (curl, body)
            if status == 200:
                assert json.loads(body)["id"] == "web-search-agent"  # the demo upstream answered
            else:
                assert b"Web Search Agent" not in body
            if status == 401:
                assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        assert _stop_wait(run) == 130
    assert_all_gone(run, tmp_path)


def test_a_plain_kill_of_the_script_alone_stops_what_it_started(tmp_path: Path) -> None:
    with running("envoy", tmp_path) as run:
        run.process.terminate()  # to the script only: its parts hear of it from the script
        assert _stop_wait(run) == 143
    assert_all_gone(run, tmp_path)


def test_a_part_that_dies_stops_the_rest_and_says_so(tmp_path: Path) -> None:
    with running("envoy", tmp_path) as run:
        upstream = [pid for pid, _ in run.started if b"build_demo_upstream" in _cmdline(pid)]
        assert len(upstream) == 1
        os.kill(upstream[0], signal.SIGKILL)
        assert _stop_wait(run) == 1
    assert "a process exited unexpectedly" in run.log.read_text()
    assert_all_gone(run, tmp_path)
