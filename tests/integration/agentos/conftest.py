"""Two real Agno AgentOS servers (agno 3.1.10) for the differential suite, started once per session.

`agentos_rbac` runs with AgentOS's own JWT RBAC on (HS256 with the session `hs_secret`, audience = the OS
id): the reference for what Agno answers. `agentos_open` runs with no auth at all: the upstream that
authproxy guards. Both run in subprocesses under uvicorn on 127.0.0.1 with OS-chosen ports; both start
at once because importing agno costs most of the ~6 s startup.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rigs.agentos import (
    PROXY_CONFIG,
    AgentOSServer,
    ProxyProcess,
    Running,
    spawn,
    start_authproxy,
    stop,
    stop_authproxy,
    wait_ready,
)


@pytest.fixture(scope="session")
def agentos_servers(
    tmp_path_factory: pytest.TempPathFactory, hs_secret: bytes
) -> Iterator[dict[str, AgentOSServer]]:
    workdir = tmp_path_factory.mktemp("agentos")
    started: list[Running] = []
    try:
        for mode in ("rbac", "open"):
            started.append(spawn(mode, workdir, hs_secret.decode()))
        for running in started:
            wait_ready(running)
        yield {running.server.mode: running.server for running in started}
    finally:
        for running in started:
            stop(running)


@pytest.fixture(scope="session")
def agentos_rbac(agentos_servers: dict[str, AgentOSServer]) -> AgentOSServer:
    """AgentOS deciding for itself: authorization=True, HS256, audience = its id."""
    return agentos_servers["rbac"]


@pytest.fixture(scope="session")
def agentos_open(agentos_servers: dict[str, AgentOSServer]) -> AgentOSServer:
    """AgentOS with no auth: the upstream authproxy is put in front of."""
    return agentos_servers["open"]


@pytest.fixture(scope="session")
def authproxy_agentos(
    agentos_open: AgentOSServer, tmp_path_factory: pytest.TempPathFactory, hs_secret: bytes
) -> Iterator[ProxyProcess]:
    """`authproxy serve` with `preset: agentos` in front of the open AgentOS; the header only, as AgentOS."""
    yield from _authproxy(agentos_open, tmp_path_factory, hs_secret, "[header]")


@pytest.fixture(scope="session")
def authproxy_agentos_cookie(
    agentos_open: AgentOSServer, tmp_path_factory: pytest.TempPathFactory, hs_secret: bytes
) -> Iterator[ProxyProcess]:
    """The same, also reading the `access_token` cookie (which AgentOS's built-in wiring never reads)."""
    yield from _authproxy(agentos_open, tmp_path_factory, hs_secret, "[header, cookie]")


def _authproxy(
    upstream: AgentOSServer, tmp_path_factory: pytest.TempPathFactory, secret: bytes, sources: str
) -> Iterator[ProxyProcess]:
    config = tmp_path_factory.mktemp("authproxy") / "agentos.yaml"
    text = PROXY_CONFIG.format(
        upstream=upstream.url, secret=secret.decode(), audience=upstream.os_id, sources=sources
    )
    config.write_text(text)
    proxy = start_authproxy(config)
    try:
        yield proxy
    finally:
        stop_authproxy(proxy)
