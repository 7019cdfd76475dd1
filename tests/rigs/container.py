"""The docker CLI bound to a private engine, a running proxy container, and the requests `authproxy demo`
prints."""

from __future__ import annotations

import http.client
import json
import random
import shlex
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Docker:
    """The docker CLI bound to the private engine."""

    cli: str
    host: str

    def __call__(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [self.cli, "-H", self.host, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(
                f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def inspect(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self("inspect", name).stdout)
        return found[0]


@dataclass(frozen=True)
class ContainerProxy:
    name: str
    port: int
    admin_port: int
    docker: Docker

    def get(self, path: str, token: str | None = None, *, admin: bool = False) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.admin_port if admin else self.port, timeout=30
        )
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def logs(self) -> str:
        result = self.docker("logs", self.name, check=False)
        return result.stdout + result.stderr


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768 and up by default).

    The container is told its ports before it starts (its HEALTHCHECK needs them), so the port is free
    only when picked; below the ephemeral range no other test's bind-to-port-0 can be handed it meanwhile.
    """
    for _ in range(200):
        port = random.randrange(20_000, 32_000)  # noqa: S311 - a port, not a secret
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def docker_cli() -> str:
    # The CLI packaged with dockerd speaks its API version; a newer one elsewhere on PATH may not.
    dockerd = shutil.which("dockerd")
    packaged = Path(dockerd).resolve().parent.parent / "bin" / "docker" if dockerd else None
    if packaged and packaged.exists():
        return str(packaged)
    return shutil.which("docker") or "docker"


def health(proxy: ContainerProxy) -> str:
    state = proxy.docker.inspect(proxy.name)["State"]
    if not state["Running"]:
        pytest.fail(f"the container exited ({state['ExitCode']}):\n{proxy.logs()}")
    status: str = state.get("Health", {}).get("Status", "none")
    if status == "unhealthy":
        pytest.fail(f"HEALTHCHECK reports unhealthy:\n{proxy.logs()}")
    return status


@dataclass(frozen=True)
class DemoRequest:
    """One `curl … # -> STATUS` line of `authproxy demo`, its `$NAME` tokens filled in from its exports."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None  # `-d name=value`, form-encoded as curl sends it
    expected: int


def demo_requests(printed: str) -> list[DemoRequest]:
    """Every curl line in what `authproxy demo` printed on stdout, with the tokens its `export` lines set."""
    lines = printed.splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
    return [_demo_request(line, exports) for line in lines if line.startswith("curl ")]


def _demo_request(line: str, exports: dict[str, str]) -> DemoRequest:
    command, expected = line.split("# ->")
    method, url, headers, body = "GET", "", {}, None
    words = iter(shlex.split(command)[1:])
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-H":
            name, value = next(words).split(": ", 1)
            for variable, token in exports.items():
                value = value.replace(f"${variable}", token)
            headers[name] = value
        elif word == "-d":
            body = next(words).encode()
        elif not word.startswith("-"):  # -i, -N: how curl shows the answer, not what it sends
            url = word
    return DemoRequest(method, url, headers, body, int(expected))
