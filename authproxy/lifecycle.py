"""`authproxy serve`: load, listen, drain on SIGTERM/SIGINT.

ProxyService is the running whole (key sources, pooled forwarder, proxied and admin listeners); run_server
wraps it in a process's life: config problems to stderr, logs configured once, signals, exit code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiohttp import web

from authproxy.config.model import Address
from authproxy.errors import ConfigError
from authproxy.logs import configure_logging, get_logger
from authproxy.proxy.forward import Forwarder
from authproxy.proxy.server import (
    Observer,
    ProxyHandler,
    ServiceState,
    build_admin_app,
    build_proxy_server,
)
from authproxy.runtime import Runtime, RuntimeHolder, load_runtime

__all__ = ["DEFAULT_GRACE", "GRACE_ENV", "ProxyService", "run_async", "run_server", "shutdown_grace"]

GRACE_ENV = "AUTHPROXY_SHUTDOWN_GRACE"
DEFAULT_GRACE = 25.0  # inside Kubernetes' default 30 s terminationGracePeriodSeconds
_ADMIN_GRACE = 1.0
_BACKLOG = 1024


def shutdown_grace() -> float:
    """Seconds in-flight requests get after SIGTERM: $AUTHPROXY_SHUTDOWN_GRACE, else 25."""
    raw = os.environ.get(GRACE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_GRACE
    except ValueError:
        return DEFAULT_GRACE
    return value if value >= 0 else DEFAULT_GRACE


def _bound(runner: web.BaseRunner) -> tuple[str, int]:
    host, port = runner.addresses[0][:2]
    return str(host), int(port)


def _show(address: tuple[str, int]) -> str:
    return str(Address(*address))


class ProxyService:
    """The proxy while it runs. `start()` binds both ports; `stop()` drains and releases everything."""

    def __init__(
        self,
        holder: RuntimeHolder,
        *,
        grace: float = DEFAULT_GRACE,
        admin_routes: Iterable[web.AbstractRouteDef] = (),
        observers: Iterable[Observer] = (),
    ) -> None:
        self.holder = holder
        self.state = ServiceState()
        self._forwarder = Forwarder()
        handler = ProxyHandler(holder, self._forwarder, observers)
        self._proxy = web.ServerRunner(build_proxy_server(handler), shutdown_timeout=grace)
        admin = build_admin_app(holder, self.state, admin_routes)
        self._admin = web.AppRunner(admin, access_log=None, shutdown_timeout=_ADMIN_GRACE)
        self.proxy_address: tuple[str, int] = ("", 0)
        self.admin_address: tuple[str, int] = ("", 0)

    async def start(self) -> None:
        """Start key sources and the forwarder, then bind; raises OSError when a port cannot be bound."""
        config = self.holder.current.config
        await self.holder.current.keys.start()
        await self._forwarder.start()
        await self._admin.setup()
        await web.TCPSite(self._admin, config.admin_listen.host, config.admin_listen.port).start()
        self.admin_address = _bound(self._admin)
        await self._proxy.setup()
        site = web.TCPSite(self._proxy, config.listen.host, config.listen.port, backlog=_BACKLOG)
        await site.start()
        self.proxy_address = _bound(self._proxy)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, then release."""
        self.state.draining = True  # /readyz says 503 at once, so a load balancer stops sending
        try:
            await self._proxy.cleanup()
        finally:
            await self._forwarder.close()
            await self.holder.current.keys.close()
            await self._admin.cleanup()


async def _serve(rt: Runtime) -> int:
    log = get_logger("authproxy.lifecycle")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = ProxyService(RuntimeHolder(rt), grace=shutdown_grace())
    try:
        try:
            await service.start()
        except OSError as error:
            log.error("cannot listen", error=str(error))
            return 1
        log.info(
            "listening",
            proxy=_show(service.proxy_address),
            admin=_show(service.admin_address),
            upstream=rt.config.upstream.url,
        )
        await stop.wait()
        log.info("shutting down", grace_s=shutdown_grace())
        return 0
    finally:
        await service.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on uvloop when it is installed, else on asyncio's own loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def run_server(config_path: str, *, listen: str | None, upstream: str | None) -> int:
    """`authproxy serve`: 0 after a clean drain, 1 when the config or a port is unusable."""
    try:
        rt = load_runtime(config_path, listen=listen, upstream=upstream)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    configure_logging(rt.config.logging)
    for warning in rt.warnings:
        get_logger("authproxy.config").warning("config warning", problem=str(warning))
    return run_async(_serve(rt))
