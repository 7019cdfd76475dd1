"""`authproxy serve --workers N`: one supervisor process and N worker processes sharing the proxied port.

Each worker is a whole `authproxy serve` with its own event loop, bound to the same port with SO_REUSEPORT,
so the kernel spreads new connections across them. The supervisor
- holds the port (bound, never listening, so no connection lands on it): port 0 resolves once, and a
  restarted worker binds the same port;
- serves the admin port: /healthz (itself), /readyz (every worker ready) and /metrics (the workers'
  metrics added up; workers_admin.py), reaching each worker's admin app on a private Unix socket;
- passes SIGHUP (reload) and SIGTERM/SIGINT (drain) on to every worker;
- restarts a worker that dies, at most `MAX_RESTARTS` times in `RESTART_WINDOW` seconds; past that it
  stops everything and exits 1, so the orchestrator restarts the whole pod.
A worker reads its stdin, a pipe from the supervisor: if the supervisor dies, the worker drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from aiohttp import web

from authproxy.config.model import Address, AuthzConfig
from authproxy.logs import get_logger
from authproxy.runtime import Runtime
from authproxy.serve.settings import DEFAULT_GRACE, DEFAULT_RELOAD_INTERVAL
from authproxy.serve.workers_admin import Fleet, Worker, build_supervisor_admin, worker_ready

__all__ = [
    "MAX_RESTARTS",
    "RESTART_WINDOW",
    "WORKERS_ENV",
    "Supervisor",
    "available_cpus",
    "cgroup_cpu_limit",
    "default_workers",
]

WORKERS_ENV = "AUTHPROXY_WORKERS"
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
_START_TIMEOUT = 30.0  # a worker that has not answered on its admin socket by then is broken


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _own_cgroups(listing: str) -> tuple[str, str]:
    """(cgroup v2 path, cgroup v1 cpu controller path) of this process, relative, from /proc/self/cgroup."""
    v2 = v1 = ""
    for line in listing.splitlines():
        hierarchy, controllers, path = [*line.split(":", 2), "", ""][:3]
        if hierarchy == "0" and not controllers:
            v2 = path.strip("/")
        elif "cpu" in controllers.split(","):
            v1 = path.strip("/")
    return v2, v1


def cgroup_cpu_limit(
    root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """CPUs the cgroup quota allows (v2 `cpu.max`, else v1 cfs quota); None when unlimited or unknown.
    ValueError when a file holds something else than a quota."""
    v2, v1 = _own_cgroups(_read(self_cgroup) or "")
    # The process's own cgroup first; the root is what a container with its own cgroup namespace sees.
    for folder in dict.fromkeys((root / v2, root)):
        text = _read(folder / "cpu.max")
        if text is not None:
            quota, period = text.split()[:2]
            return None if quota == "max" else int(quota) / int(period)
    for mount in ("cpu", "cpu,cpuacct"):
        for folder in dict.fromkeys((root / mount / v1, root / mount)):
            quota_text, period_text = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota_text is not None and period_text is not None:
                quota_us, period_us = int(quota_text), int(period_text)
                return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def available_cpus() -> int:
    """CPUs this process may run on (affinity, then the cgroup quota, rounded up); 1 when unknown."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    with contextlib.suppress(ValueError, ZeroDivisionError):
        limit = cgroup_cpu_limit()
        if limit is not None:
            count = min(count, math.ceil(limit))
    return max(1, count)


def default_workers() -> int:
    """$AUTHPROXY_WORKERS when set, else the CPUs available; ValueError when the variable is no count."""
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw:
        return available_cpus()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{WORKERS_ENV} must be a whole number of at least 1; got {raw!r}")
    return int(raw)


async def _reserve(address: Address) -> socket.socket:
    """Bind (never listen) the proxied address with SO_REUSEPORT; OSError when it is taken."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


async def _reserve_proxied(listen: Address | None) -> tuple[contextlib.ExitStack, str | None]:
    """The proxied port held, and its address with port 0 resolved; nothing when only decision ports run."""
    held = contextlib.ExitStack()
    if listen is None:
        return held, None
    reserved = held.enter_context(await _reserve(listen))
    return held, str(Address(listen.host, reserved.getsockname()[1]))


async def _reserve_decision_ports(authz: AuthzConfig) -> contextlib.ExitStack:
    """Hold the decision ports like the proxied one; every worker binds them too. OSError when unusable."""
    held = contextlib.ExitStack()
    with contextlib.ExitStack() as failing:
        failing.push(held)  # closes what was reserved if a later port fails
        for key, address in (("authz_listen", authz.listen), ("authz.grpc_listen", authz.grpc_listen)):
            if address is None:
                continue
            if address.port == 0:
                # Each worker reads the address from the config file: port 0 would give each its own port.
                raise OSError(f"{key} needs a fixed port with --workers above 1")
            held.enter_context(await _reserve(address))
        failing.pop_all()
    return held


class Supervisor:
    """Starts, watches, signals and restarts the workers; serves the admin port for all of them."""

    def __init__(
        self,
        rt: Runtime,
        count: int,
        *,
        upstream: str | None = None,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.fleet = Fleet()
        self._config = rt.config
        self._count = count
        self._upstream = upstream
        self._reload_interval = reload_interval
        self._grace = grace
        # The proxied port, resolved once bound (port 0); None when only the decision port runs.
        self._listen = None if rt.config.listen is None else str(rt.config.listen)
        self._restarts_at: deque[float] = deque()
        self._failed = False
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = get_logger("authproxy.serve.workers")

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after every worker drained, 1 when something failed."""
        loop = asyncio.get_running_loop()
        handlers = {signal.SIGTERM: self._stop.set, signal.SIGINT: self._stop.set, signal.SIGHUP: self._hup}
        for signum, handle in handlers.items():
            loop.add_signal_handler(signum, handle)
        try:
            return await self._run()
        finally:
            for signum in handlers:
                loop.remove_signal_handler(signum)

    async def _run(self) -> int:
        try:
            reserved, self._listen = await _reserve_proxied(self._config.listen)
        except OSError as error:
            self._log.error("cannot listen", error=str(error))
            return 1
        try:
            decisions = await _reserve_decision_ports(self._config.authz)
        except OSError as error:
            reserved.close()
            self._log.error("cannot listen", error=str(error))
            return 1
        admin = web.AppRunner(build_supervisor_admin(self.fleet), access_log=None, shutdown_timeout=1.0)
        with reserved, decisions, tempfile.TemporaryDirectory(prefix="authproxy-") as folder:
            workers = [Worker(i, os.path.join(folder, f"worker-{i}.sock")) for i in range(self._count)]
            self.fleet.workers = workers
            try:
                started = await self._start_all(admin)
                if started:
                    await self._stop.wait()
            finally:
                codes = await self._stop_all()
                await admin.cleanup()
        return 1 if self._failed or any(codes) else 0

    async def _start_all(self, admin: web.AppRunner) -> bool:
        await admin.setup()
        address = self._config.admin_listen
        try:
            await web.TCPSite(admin, address.host, address.port).start()
        except OSError as error:
            self._failed = True
            self._log.error("cannot listen", error=str(error))
            return False
        for worker in self.fleet.workers:
            await self._spawn(worker)
        if not all(await asyncio.gather(*(self._answering(w) for w in self.fleet.workers))):
            self._failed = True
            self._log.error("a worker did not start", workers=self._count)
            return False
        admin_host, admin_port = admin.addresses[0][:2]
        authz = self._config.authz
        self._log.info(
            "listening",
            proxy=self._listen,
            admin=str(Address(str(admin_host), int(admin_port))),
            upstream=self._config.upstream.url or None,
            workers=self._count,
            **{key: str(a) for key, a in (("authz", authz.listen), ("authz_grpc", authz.grpc_listen)) if a},
        )
        for worker in self.fleet.workers:
            self._tasks.add(asyncio.create_task(self._keep(worker), name=f"worker-{worker.index}"))
        return True

    async def _spawn(self, worker: Worker) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(worker.socket)  # left by a worker that died
        argv = [sys.executable, "-m", "authproxy", "serve", "-c", self._config.path]
        argv += ["--workers", "1", "--reload-interval", str(self._reload_interval)]
        if self._listen is not None:
            argv += ["--listen", self._listen]
        argv += ["--worker-index", str(worker.index), "--worker-admin-socket", worker.socket]
        if self._upstream is not None:
            argv += ["--upstream", self._upstream]
        # stdin is a pipe the worker watches: its end of file means this supervisor is gone.
        worker.process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE)

    async def _answering(self, worker: Worker) -> bool:
        """Poll the worker's admin socket until it answers; False if it exits or stays silent."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if worker.process is None or worker.process.returncode is not None:
                return False
            if await worker_ready(worker, "/healthz"):
                return True
            await asyncio.sleep(0.05)
        return False

    async def _keep(self, worker: Worker) -> None:
        """Restart `worker` whenever it exits, within the restart budget."""
        while worker.process is not None:
            code = await worker.process.wait()
            if self._stop.is_set():
                return
            self.fleet.merger.retire(worker.process.pid)
            self._log.error("worker exited", worker=worker.index, pid=worker.process.pid, code=code)
            now = time.monotonic()
            while self._restarts_at and now - self._restarts_at[0] > RESTART_WINDOW:
                self._restarts_at.popleft()
            if len(self._restarts_at) >= MAX_RESTARTS:
                self._log.error(
                    "workers keep exiting; stopping", restarts=MAX_RESTARTS, window_s=RESTART_WINDOW
                )
                self._failed = True
                self._stop.set()
                return
            self._restarts_at.append(now)
            self.fleet.restarts += 1
            await asyncio.sleep(0.1 * len(self._restarts_at))  # a crash loop backs off a little
            if self._stop.is_set():
                return
            await self._spawn(worker)
            self._log.info("worker restarted", worker=worker.index, pid=worker.process.pid)

    def _hup(self) -> None:
        self._log.info("reload requested; signalling workers", signal="SIGHUP")
        self._signal_all(signal.SIGHUP)

    def _signal_all(self, signum: signal.Signals) -> None:
        for worker in self.fleet.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    async def _stop_all(self) -> list[int]:
        """SIGTERM every worker, wait for the drain (bounded by the grace period), then kill stragglers."""
        self.fleet.draining = True
        self._log.info("shutting down", grace_s=self._grace, workers=self._count)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._signal_all(signal.SIGTERM)
        processes = [w.process for w in self.fleet.workers if w.process is not None]
        try:
            async with asyncio.timeout(self._grace + 5.0):
                return list(await asyncio.gather(*(p.wait() for p in processes)))
        except TimeoutError:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            return [await p.wait() for p in processes]
