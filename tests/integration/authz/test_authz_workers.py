"""The decision port under `authproxy serve --workers 2`: every worker binds it (SO_REUSEPORT) and answers
checks; port 0 is refused with workers, since each worker would bind a port of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from tests.rigs.authz import authz_config
from tests.rigs.keys import TokenFactory
from tests.rigs.polling import poll
from tests.rigs.serve import AUTHPROXY, ServeFactory, ServeProcess
from tests.rigs.upstream import RecordingUpstream


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A port the OS picked, held for the block by a socket bound with SO_REUSEPORT and never listening.

    --workers needs a fixed decision port. Released before the workers bind it, another process could be
    handed it meanwhile; held, no bind to port 0 gets it, while the workers (SO_REUSEPORT, same user) bind
    it beside this socket and take every connection (only a listening socket accepts). The supervisor
    holds the proxied port the same way."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


async def check(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url + "/forward-auth", headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_every_worker_answers_checks_on_the_decision_port(
    serve: ServeFactory, tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes, token: TokenFactory
) -> None:
    path = tmp_path / "authz.yaml"
    with held_port() as port:  # held to the end: a worker that binds late still finds it
        path.write_text(authz_config(upstream.url, hs_secret, authz_listen=f"127.0.0.1:{port}"))
        served = await serve(path, "--workers", "2")
        listening = served.log.find("listening")
        assert listening is not None and listening["authz"] == f"127.0.0.1:{port}"
        await _each_worker_answers(served, f"http://127.0.0.1:{port}", token)
    assert upstream.requests == []
    served.process.terminate()
    assert await served.finish() == 0


async def _each_worker_answers(served: ServeProcess, url: str, token: TokenFactory) -> None:
    asked = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/items"}
    bearer = {"Authorization": f"Bearer {token('proxy:use')}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:

        async def both_workers_answered() -> bool:
            assert await check(fresh, url, {**asked, **bearer}) == 200
            assert await check(fresh, url, asked) == 401
            pids = {line["pid"] for line in served.log.lines if line.get("authz") == "forward_auth"}
            return len(pids) == 2

        await poll(both_workers_answered)


async def test_decision_port_zero_with_workers_is_refused(
    tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes
) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(authz_config(upstream.url, hs_secret))
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY,
        *("serve", "-c", str(path), "--workers", "2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AUTHPROXY_WORKERS": "2"},
    )
    out, _ = await process.communicate()
    assert process.returncode == 1
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line["event"] == "cannot listen"]
    assert refused[0]["error"] == "authz_listen needs a fixed port with --workers above 1"
