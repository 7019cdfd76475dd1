"""Fixtures of the external-authorization tests: the proxy started in process with its decision port."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService
from tests.rigs.authz import AuthzFactory, RunningAuthz, authz_config


@pytest.fixture
async def start_authz(tmp_path: Path, hs_secret: bytes) -> AsyncIterator[AuthzFactory]:
    started: list[ProxyService] = []

    async def start(upstream_url: str, *, authz: str = "", **options: str) -> RunningAuthz:
        path = tmp_path / f"authz-{len(started)}.yaml"
        path.write_text(authz_config(upstream_url, hs_secret, authz=authz, **options))
        service = ProxyService(RuntimeHolder(await asyncio.to_thread(load_runtime, path)), grace=2.0)
        started.append(service)
        await service.start()
        assert service.decisions is not None
        (host, port), (ahost, aport) = service.proxy_address, service.admin_address
        assert service.decisions.address is not None
        dhost, dport = service.decisions.address
        return RunningAuthz(
            service, f"http://{host}:{port}", f"http://{dhost}:{dport}", f"http://{ahost}:{aport}", path
        )

    yield start
    for service in reversed(started):
        await service.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder for an engine's Unix sockets: their paths must stay under ~108 bytes, tmp_path may not."""
    folder = Path(tempfile.mkdtemp(prefix="authz-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
