"""SIGTERM/SIGINT drain `authproxy serve`: stop accepting, finish in-flight requests within the grace period,
exit 0."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.rigs.config import config_text
from tests.rigs.serve import ServeFactory
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
def config(upstream: RecordingUpstream, tmp_path: Path, hs_secret: bytes) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(config_text(upstream.url, hs_secret))
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_lets_in_flight_request_finish_then_exits_zero(
    signum: signal.Signals,
    serve: ServeFactory,
    config: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    served = await serve(config)
    in_flight = asyncio.create_task(client.get(served.url + "/slow", headers=auth))
    await upstream.slow_waiting.wait()
    served.process.send_signal(signum)
    await served.log.wait_for("shutting down")

    # Draining: the admin port says not ready, and the proxied port takes no new connections.
    async with client.get(served.admin_url + "/readyz") as resp:
        assert resp.status == 503
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as fresh:
            await fresh.get(served.url + "/new", headers=auth)

    upstream.slow_release.set()
    async with await in_flight as resp:
        assert resp.status == 200
        assert await resp.text() == "slow done"
    assert await served.finish() == 0
    assert served.stderr == b""


async def test_stuck_request_is_cut_after_the_grace_period_and_exit_is_zero(
    serve: ServeFactory,
    config: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    served = await serve(config, env={"AUTHPROXY_SHUTDOWN_GRACE": "0.2"})
    in_flight = asyncio.create_task(client.get(served.url + "/slow", headers=auth))
    await upstream.slow_waiting.wait()
    served.process.terminate()
    assert await served.finish() == 0  # the upstream never answered: the grace period bounded the wait
    with pytest.raises(aiohttp.ClientError):
        await in_flight


async def test_idle_proxy_exits_zero_on_sigterm(serve: ServeFactory, config: Path) -> None:
    served = await serve(config)
    served.process.terminate()
    assert await served.finish() == 0
    assert served.log.find("shutting down") is not None
