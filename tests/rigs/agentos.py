"""Start, probe and stop a real AgentOS subprocess (agentos_app.py) and an `authproxy serve` in front of it,
for the differential suite (its own thread blocks on them)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.rigs.serve import AUTHPROXY

APP_FACTORY = Path(__file__).with_name("agentos_app.py")
OS_ID = "authproxy-test-os"
READY_TIMEOUT = 240.0  # seconds for one /health request; the listening socket queues it until uvicorn serves


@dataclass(frozen=True, slots=True)
class AgentOSServer:
    url: str  # http://127.0.0.1:PORT
    port: int
    os_id: str
    mode: str  # "rbac" | "open"
    log: Path


@dataclass(slots=True)
class Running:
    server: AgentOSServer
    process: subprocess.Popen[bytes]
    log: IO[bytes]


def spawn(mode: str, workdir: Path, secret: str) -> Running:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "OS_SECURITY_KEY"))}
    env.update({"AGENTOS_TEST_SECRET": secret, "OPENAI_API_KEY": "sk-dummy-never-used"})
    # A model call that slips through fails at once on a closed loopback port, never leaves the machine.
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    log_path = workdir / f"agentos-{mode}.log"
    log = log_path.open("wb")
    args = [sys.executable, str(APP_FACTORY), "--mode", mode, "--db", str(workdir / f"{mode}.db")]
    args += ["--fd", str(sock.fileno()), "--os-id", OS_ID]
    try:
        process = subprocess.Popen(
            args, pass_fds=(sock.fileno(),), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    finally:
        sock.close()  # the child holds its own copy; connections queue there until uvicorn serves
    server = AgentOSServer(f"http://127.0.0.1:{port}", port, OS_ID, mode, log_path)
    return Running(server, process, log)


def wait_ready(running: Running) -> None:
    """One /health request waits in the listen queue until uvicorn serves it; a dead child resets it."""
    connection = http.client.HTTPConnection("127.0.0.1", running.server.port, timeout=READY_TIMEOUT)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        running.process.poll()
        log = running.server.log.read_text(errors="replace")[-4000:]
        why = f"AgentOS ({running.server.mode}) not ready (exit {running.process.returncode}): {error}"
        raise RuntimeError(f"{why}\n{log}") from error
    finally:
        connection.close()
    if status != 200:
        raise RuntimeError(f"AgentOS ({running.server.mode}) /health answered {status}")


def stop(running: Running) -> None:
    if running.process.poll() is None:
        running.process.terminate()
        try:
            running.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(timeout=15)
    running.log.close()


# --- authproxy, as `authproxy serve -c` in a subprocess, in front of the open AgentOS ----------------------

PROXY_CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  read_timeout: 60s
jwt:
  algorithms: [HS256]
  keys:
    - secret: "{secret}"
  audience: {audience}
  leeway: 10s
  sources: {sources}
policy:
  preset: agentos
logging:
  level: info
  format: json
"""


@dataclass(slots=True)
class ProxyProcess:
    url: str
    process: subprocess.Popen[bytes]
    lines: list[dict[str, Any]]  # the JSON log lines, collected by a reader thread
    reader: threading.Thread


def start_authproxy(config: Path) -> ProxyProcess:
    """Start `authproxy serve -c CONFIG`; returns once it logged `listening` (its port is read from that)."""
    process = subprocess.Popen(
        [AUTHPROXY, "serve", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    lines: list[dict[str, Any]] = []
    for raw in process.stdout:  # blocks on each line; ends if the process dies before listening
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(raw))
        if lines and lines[-1].get("event") == "listening":
            break
    else:
        process.wait()
        raise RuntimeError(f"authproxy exited ({process.returncode}) before listening: {lines}")
    # Keep draining: a full pipe would block the proxy's per-request log writes.
    reader = threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True)
    reader.start()
    return ProxyProcess(f"http://{lines[-1]['proxy']}", process, lines, reader)


def _drain(stream: IO[bytes], lines: list[dict[str, Any]]) -> None:
    for raw in stream:
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(raw))


def stop_authproxy(proxy: ProxyProcess) -> None:
    if proxy.process.poll() is None:
        proxy.process.terminate()
        try:
            proxy.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proxy.process.kill()
            proxy.process.wait(timeout=15)
    proxy.reader.join(timeout=15)
    if proxy.process.stdout is not None:
        proxy.process.stdout.close()


# --- talking to either side -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any


async def send(
    http: aiohttp.ClientSession, base: str, method: str, path: str, headers: dict[str, str], **body: Any
) -> Answer:
    """`body`: aiohttp's `json=` or `data=`, passed through."""
    async with http.request(method, base + path, headers=headers, allow_redirects=False, **body) as response:
        text = await response.text()
        is_json = response.content_type == "application/json" and text
        return Answer(response.status, await response.json() if is_json else text)
