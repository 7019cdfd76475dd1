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
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from authproxy.authz.server import DecisionListener
from authproxy.config.model import Address
from authproxy.errors import ConfigError
from authproxy.logs import configure_logging, get_logger
from authproxy.proxy.forward import Forwarder
from authproxy.proxy.frontend import Observer
from authproxy.proxy.protocol import HEAD_TIMEOUT
from authproxy.proxy.server import ProxyHandler, build_listener
from authproxy.runtime import Runtime, RuntimeHolder, load_runtime
from authproxy.serve.admin import ServiceState, build_admin_app
from authproxy.serve.metrics import Metrics
from authproxy.serve.reload import Reloader, ReloadOptions
from authproxy.serve.settings import DEFAULT_GRACE, DEFAULT_RELOAD_INTERVAL, ServeSettings
from authproxy.serve.tls import follow_reloads
from authproxy.serve.tracing import Tracing, TracingUnavailable, check_tracing, start_tracing
from authproxy.serve.workers import Supervisor

__all__ = ["ProxyService", "WorkerRole", "run_async", "run_server"]

_ADMIN_GRACE = 1.0
_BACKLOG = 1024


def _bound(runner: web.BaseRunner) -> tuple[str, int]:
    host, port = runner.addresses[0][:2]
    return str(host), int(port)


def _show(address: tuple[str, int]) -> str:
    return str(Address(*address))


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """This process is worker `index` of `authproxy serve --workers N` (workers.py is the supervisor)."""

    index: int
    admin_socket: str  # the admin app is served here, for the supervisor only


class ProxyService:
    """The proxy while it runs. `start()` binds both ports; `stop()` drains and releases everything."""

    def __init__(
        self,
        holder: RuntimeHolder,
        *,
        grace: float = DEFAULT_GRACE,
        admin_routes: Iterable[web.AbstractRouteDef] = (),
        observers: Iterable[Observer] = (),
        reload: ReloadOptions | None = None,
        worker: WorkerRole | None = None,
        head_timeout: float = HEAD_TIMEOUT,
        tracing: Tracing | None = None,
    ) -> None:
        self.holder = holder
        self.state = ServiceState()
        self._worker = worker
        self._forwarder = Forwarder()
        self.metrics = Metrics(holder)
        self.handler = ProxyHandler(holder, self._forwarder, (self.metrics.observe, *observers), tracing)
        self.metrics.count_live(self.handler)
        self.reloader = Reloader(holder, reload or ReloadOptions(), self.metrics)
        self._listener = build_listener(self.handler, head_timeout=head_timeout)
        self._proxy: asyncio.Server | None = None
        self._grace = grace
        admin = build_admin_app(holder, self.state, [self.metrics.route(), *admin_routes])
        self._admin = web.AppRunner(admin, access_log=None, shutdown_timeout=_ADMIN_GRACE)
        self.proxy_address: tuple[str, int] = ("", 0)
        self.admin_address: tuple[str, int] = ("", 0)
        # external authorization mode: the same gate and observers on a port of its own
        self.decisions: DecisionListener | None = None
        if holder.current.config.authz.enabled:
            self.decisions = DecisionListener(holder, (self.metrics.observe, *observers), grace=grace)

    async def start(self) -> None:
        """Start key sources and the forwarder, then bind; raises OSError when a port cannot be bound."""
        config = self.holder.current.config
        await self.holder.current.keys.start()
        await self._forwarder.start()
        await self.reloader.start()
        await self._admin.setup()
        if self._worker is not None:
            await web.UnixSite(self._admin, self._worker.admin_socket).start()
            self.admin_address = (self._worker.admin_socket, 0)
        else:
            await web.TCPSite(self._admin, config.admin_listen.host, config.admin_listen.port).start()
            self.admin_address = _bound(self._admin)
        if config.listen is not None:  # None: no upstream, the decision port alone runs
            # Workers each bind the same port; the kernel spreads new connections across them.
            self._proxy = await asyncio.get_running_loop().create_server(
                self._listener,
                config.listen.host or None,
                config.listen.port,
                backlog=_BACKLOG,
                reuse_port=self._worker is not None,
                ssl=follow_reloads(lambda: self.holder.current.config.tls),
            )
            host, port = self._proxy.sockets[0].getsockname()[:2]
            self.proxy_address = (str(host), int(port))
        if self.decisions is not None:
            await self.decisions.start(
                config.authz,
                reuse_port=self._worker is not None,
                # its own certificate (authz.tls), renewed from the next handshake like the proxied port's
                ssl_context=follow_reloads(lambda: self.holder.current.config.authz.tls),
            )

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish within the grace period, then release."""
        self.state.draining = True  # /readyz says 503 at once, so a load balancer stops sending
        await self.reloader.stop()
        try:
            if self.decisions is not None:
                await self.decisions.stop()
            if self._proxy is not None:
                self._proxy.close()  # no new connections; those open finish their answer (drain)
                await self._listener.drain(self._grace)
                await self._proxy.wait_closed()
        finally:
            await self._forwarder.close()
            await self.holder.current.keys.close()
            await self.holder.current.limits.close()
            await self._admin.cleanup()


def _stop_when_orphaned(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A worker's stdin is a pipe from its supervisor: end of file means the supervisor is gone."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            get_logger("authproxy.serve.lifecycle").warning("supervisor gone; shutting down")
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def _serve(
    rt: Runtime, reload: ReloadOptions, settings: ServeSettings, worker: WorkerRole | None = None
) -> int:
    log = get_logger("authproxy.serve.lifecycle")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        tracing = start_tracing(os.environ)
    except TracingUnavailable as error:
        log.error("cannot trace", error=str(error))
        return 1
    service = ProxyService(
        RuntimeHolder(rt), grace=settings.grace, reload=reload, worker=worker, tracing=tracing
    )
    handlers: dict[int, Callable[[], None]] = {
        signal.SIGTERM: stop.set,
        signal.SIGINT: stop.set,
        signal.SIGHUP: lambda: service.reloader.request("SIGHUP"),
    }
    for signum, handle in handlers.items():
        loop.add_signal_handler(signum, handle)
    if worker is not None:
        _stop_when_orphaned(loop, stop)
    try:
        try:
            await service.start()
        except OSError as error:
            log.error("cannot listen", error=str(error))
            return 1
        log.info(
            "listening" if worker is None else "worker listening",  # the supervisor says "listening"
            proxy=_show(service.proxy_address) if rt.config.listen is not None else None,
            admin=_show(service.admin_address) if worker is None else worker.admin_socket,
            upstream=rt.config.upstream.url or None,
            **_decision_ports(service.decisions),
        )
        await stop.wait()
        log.info("shutting down", grace_s=settings.grace)
        return 0
    finally:
        await service.stop()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # exports the spans still buffered
        for signum in handlers:
            loop.remove_signal_handler(signum)
        if worker is not None:
            loop.remove_reader(sys.stdin.fileno())


def _decision_ports(decisions: DecisionListener | None) -> dict[str, str]:
    ports = {"authz": decisions and decisions.address, "authz_grpc": decisions and decisions.grpc_address}
    return {name: _show(address) for name, address in ports.items() if address}


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional at run time: not installed on every platform
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on uvloop when it is installed, else on asyncio's own loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


def run_server(
    config_path: str,
    *,
    listen: str | None,
    upstream: str | None,
    workers: int = 1,
    reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    worker: WorkerRole | None = None,
) -> int:
    """`authproxy serve`: 0 after a clean drain, 1 when the config or a port is unusable.

    `workers` > 1 makes this process the supervisor of that many workers (authproxy.serve.workers);
    `reload_interval` 0 turns file watching off (reload on SIGHUP only).
    """
    try:
        rt = load_runtime(config_path, listen=listen, upstream=upstream)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    configure_logging(
        rt.config.logging, fields=None if worker is None else {"worker": worker.index, "pid": os.getpid()}
    )
    if worker is None:  # a worker stays quiet: its supervisor has logged them
        for warning in rt.warnings:
            get_logger("authproxy.config").warning("config warning", problem=str(warning))
    settings = ServeSettings.from_environment()
    try:
        check_tracing(os.environ)  # before any worker starts: a bad setting is one error, not N restarts
    except TracingUnavailable as error:
        get_logger("authproxy.serve.lifecycle").error("cannot trace", error=str(error))
        return 1
    if workers > 1 and worker is None:
        supervisor = Supervisor(
            rt, workers, upstream=upstream, reload_interval=reload_interval, grace=settings.grace
        )
        return run_async(supervisor.run())
    reload = ReloadOptions(listen, upstream, reload_interval if reload_interval > 0 else None)
    return run_async(_serve(rt, reload, settings, worker))
