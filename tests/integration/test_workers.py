"""`authproxy serve --workers N`: requests spread over several processes on one port, the supervisor's admin
port answers for all of them (readiness of every worker, metrics added up), SIGHUP and SIGTERM reach every
worker, a dead worker is restarted within a budget, and no worker outlives its supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from authproxy.serve.workers import MAX_RESTARTS
from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll
from tests.rigs.serve import AUTHPROXY, ServeFactory, ServeProcess
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
def config(tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes) -> Path:
    path = tmp_path / "workers.yaml"
    path.write_text(config_text(upstream.url, hs_secret))
    return path


@pytest.fixture
async def fresh() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection per request, so the kernel picks a worker each time."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


def events(served: ServeProcess, event: str) -> list[dict[str, Any]]:
    return [line for line in served.log.lines if line.get("event") == event]


def worker_pids(served: ServeProcess) -> dict[int, int]:
    """worker index -> pid of its latest process, from the lines workers print when they listen."""
    return {line["worker"]: line["pid"] for line in events(served, "worker listening")}


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited, not yet reaped by whoever adopted it


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> int:
    async with session.get(url, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_requests_land_on_several_workers_and_metrics_add_up(
    serve: ServeFactory, config: Path, fresh: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    served = await serve(config, "--workers", "2")
    pids = worker_pids(served)
    assert sorted(pids) == [0, 1] and len(set(pids.values())) == 2
    sent = 0

    async def spread() -> bool:
        nonlocal sent
        for _ in range(10):
            assert await get(fresh, served.url + "/items", auth) == 200
            sent += 1
        return len({line["pid"] for line in events(served, "request")}) == 2

    await poll(spread)
    assert {line["pid"] for line in events(served, "request")} == set(pids.values())

    async def all_counted() -> bool:
        return value(await scrape(fresh, served.admin_url), "authproxy_requests_total") == sent

    await poll(all_counted)
    samples = await scrape(fresh, served.admin_url)
    assert value(samples, "authproxy_requests_total", decision="allow", status="200", route="* /**") == sent
    assert value(samples, "authproxy_request_duration_seconds_count") == sent
    assert (value(samples, "authproxy_workers"), value(samples, "authproxy_workers_up")) == (2, 2)
    assert value(samples, "authproxy_policy_rules") == 3  # the same in every worker: not added up
    assert {s.labels["worker"] for s in samples if s.name == "process_resident_memory_bytes"} == {"0", "1"}
    async with fresh.get(served.admin_url + "/readyz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ready"})

    served.process.terminate()
    assert await served.finish() == 0
    await poll(lambda: _all_gone(pids.values()))


async def test_the_supervisors_readyz_says_the_workers_run_in_dry_run(
    serve: ServeFactory,
    tmp_path: Path,
    upstream: RecordingUpstream,
    hs_secret: bytes,
    fresh: aiohttp.ClientSession,
) -> None:
    path = tmp_path / "dry-run.yaml"
    path.write_text(config_text(upstream.url, hs_secret, policy="  dry_run: true\n"))
    served = await serve(path, "--workers", "2")
    async with fresh.get(served.admin_url + "/readyz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ready", "dry_run": True})


async def _all_gone(pids: Iterable[int]) -> bool:
    return all(gone(pid) for pid in pids)


async def test_sighup_to_the_supervisor_reloads_every_worker(
    serve: ServeFactory, config: Path, fresh: aiohttp.ClientSession, token: TokenFactory
) -> None:
    served = await serve(config, "--workers", "2", "--reload-interval", "0")
    reader = {"Authorization": f"Bearer {token('proxy:use', 'private:read')}"}
    _edit(config, "[private:read]", "[private:write]")
    served.process.send_signal(signal.SIGHUP)

    async def every_worker_reloaded() -> bool:
        return {line["pid"] for line in events(served, "config reloaded")} == set(
            worker_pids(served).values()
        )

    await poll(every_worker_reloaded)
    statuses = {await get(fresh, served.url + "/private/doc", reader) for _ in range(20)}
    assert statuses == {403}
    assert value(await scrape(fresh, served.admin_url), "authproxy_config_reloads_total") == 2
    served.process.terminate()
    assert await served.finish() == 0


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


async def test_dead_worker_is_restarted_and_totals_do_not_go_down(
    serve: ServeFactory, config: Path, fresh: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    served = await serve(config, "--workers", "2")
    for _ in range(20):
        assert await get(fresh, served.url + "/items", auth) == 200

    async def counted() -> bool:
        return value(await scrape(fresh, served.admin_url), "authproxy_requests_total") == 20

    await poll(counted)  # this scrape is what the supervisor keeps of a worker that dies
    victim = worker_pids(served)[0]
    os.kill(victim, signal.SIGKILL)
    restarted = await served.log.wait_for("worker restarted")
    assert restarted["worker"] == 0 and restarted["pid"] != victim

    async def ready() -> bool:
        async with fresh.get(served.admin_url + "/readyz") as resp:
            return resp.status == 200

    await poll(ready)
    samples = await scrape(fresh, served.admin_url)
    assert value(samples, "authproxy_requests_total") == 20
    assert value(samples, "authproxy_worker_restarts_total") == 1
    assert value(samples, "authproxy_workers_up") == 2
    assert await get(fresh, served.url + "/items", auth) == 200
    served.process.terminate()
    assert await served.finish() == 0


async def test_workers_that_keep_dying_stop_the_supervisor_with_exit_one(
    serve: ServeFactory, config: Path
) -> None:
    served = await serve(config, "--workers", "2")
    pid = worker_pids(served)[0]
    for deaths in range(1, MAX_RESTARTS + 2):
        os.kill(pid, signal.SIGKILL)
        if deaths > MAX_RESTARTS:
            break

        async def restarted(count: int = deaths) -> bool:
            return len(events(served, "worker restarted")) == count

        await poll(restarted)
        pid = events(served, "worker restarted")[-1]["pid"]
    assert await served.finish() == 1
    assert events(served, "workers keep exiting; stopping")


async def test_workers_exit_when_the_supervisor_is_killed(serve: ServeFactory, config: Path) -> None:
    served = await serve(config, "--workers", "2")
    pids = worker_pids(served).values()
    served.process.kill()
    await served.process.wait()
    await poll(lambda: _all_gone(pids))
    assert len(events(served, "supervisor gone; shutting down")) == 2


async def test_workers_not_ready_keep_the_supervisor_not_ready(
    serve: ServeFactory, upstream: RecordingUpstream, tmp_path: Path, fresh: aiohttp.ClientSession
) -> None:
    with socket.socket() as closed:  # bound, never listening: the IdP is down
        closed.bind(("127.0.0.1", 0))
        keys = f"    - jwks_url: http://127.0.0.1:{closed.getsockname()[1]}/jwks.json"
        config = tmp_path / "jwks.yaml"
        config.write_text(config_text(upstream.url, b"", algorithms="RS256", keys=keys))
        served = await serve(config, "--workers", "2")
        async with fresh.get(served.admin_url + "/readyz") as resp:
            body = {"status": "workers_not_ready", "ready": 0, "workers": 2}
            assert (resp.status, await resp.json()) == (503, body)
        assert await get(fresh, served.admin_url + "/healthz") == 200
        served.process.terminate()
        assert await served.finish() == 0


def _with_port(folder: Path, text: str, key: str, port: int) -> Path:
    # The first match of "listen: " is the proxied port (line 1), not admin_listen.
    start = text.index("admin_listen: " if key == "admin_listen" else "listen: ")
    line_end = text.index("\n", start)
    path = folder / "busy.yaml"
    path.write_text(f"{text[:start]}{key}: 127.0.0.1:{port}{text[line_end:]}")
    return path


async def run_to_exit(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await process.communicate()  # returns once every process holding stdout has exited
    assert process.returncode is not None
    return (
        process.returncode,
        [line for line in out.decode().splitlines() if line.startswith("{")],
        err.decode(),
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--workers", "0"), {}, "--workers must be at least 1"),
        (("--reload-interval", "-1"), {}, "--reload-interval not negative"),
        ((), {"AUTHPROXY_WORKERS": "many"}, "AUTHPROXY_WORKERS must be a whole number of at least 1"),
    ],
    ids=["zero-workers", "negative-interval", "bad-env"],
)
async def test_bad_worker_settings_are_refused_before_anything_starts(
    config: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    code, lines, err = await run_to_exit("serve", "-c", str(config), *args, env=env)
    assert code == 1
    assert lines == []
    assert message in err


@pytest.mark.parametrize("taken", ["listen", "admin_listen"])
async def test_port_in_use_exits_one_and_leaves_no_worker_behind(
    taken: str, config: Path, upstream: RecordingUpstream, hs_secret: bytes, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = _with_port(tmp_path, config_text(upstream.url, hs_secret), taken, port)
        code, lines, _ = await run_to_exit("serve", "-c", str(busy), "--workers", "2")
    assert code == 1
    assert any('"cannot listen"' in line for line in lines)
