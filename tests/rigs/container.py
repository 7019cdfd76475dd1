"""The docker CLI bound to a private engine, and a running proxy container."""

from __future__ import annotations

import http.client
import json
import random
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
