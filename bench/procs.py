"""Subprocess services on 127.0.0.1: start, poll until ready, measure memory, always tear down."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.tls_material import client_context

__all__ = ["Service", "ServiceError", "Services", "free_port", "peak_rss_kib", "rss_kib", "tree_pids"]

_READY_TIMEOUT = 60.0
_STOP_GRACE = 5.0


class ServiceError(RuntimeError):
    """A service exited or never became ready; the message carries the tail of its log."""


def free_port() -> int:
    """A port the OS just handed out on loopback; the service binds it next (a small, accepted race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status_kib(pid: int, field_name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process is gone
        return 0
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (workers of a multi-process server), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def rss_kib(root: int) -> int:
    """Resident memory now, summed over the process tree."""
    return sum(_status_kib(pid, "VmRSS") for pid in tree_pids(root))


def peak_rss_kib(root: int) -> int:
    """Peak resident memory (VmHWM), summed over the process tree's living members."""
    return sum(_status_kib(pid, "VmHWM") for pid in tree_pids(root))


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, int] = field(default_factory=dict)  # other ports (admin…)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _responds(url: str, want_ok: bool) -> bool:
    try:
        # A loopback URL built here; an https one trusts the run's own certificate.
        with urllib.request.urlopen(url, timeout=2, context=client_context()) as resp:  # noqa: S310
            return int(resp.status) < 400 or not want_ok
    except urllib.error.HTTPError as err:
        return not want_ok and err.code < 500
    except (urllib.error.URLError, OSError):
        return False


class Services:
    """Owns every subprocess it starts; closing (also on errors and Ctrl-C) stops them all."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self._log_dir = log_dir
        self._env = env
        self._started: list[Service] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        ready_url: str,
        want_ok: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Service:
        log = self._log_dir / f"{name}.log"
        with log.open("wb") as out:
            # A session of its own: Ctrl-C reaches only the harness, which then stops the whole group.
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**(self._env or os.environ), **(env or {})},
                start_new_session=True,
            )
        service = Service(name, port, proc, log)
        self._started.append(service)
        self._wait_ready(service, ready_url, want_ok)
        return service

    def _wait_ready(self, service: Service, url: str, want_ok: bool) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if service.proc.poll() is not None:
                raise ServiceError(
                    f"{service.name} exited ({service.proc.returncode}):\n{service.log_tail()}"
                )
            if _responds(url, want_ok):
                return
            time.sleep(0.05)  # polling interval, not a readiness guess
        raise ServiceError(
            f"{service.name} not ready at {url} after {_READY_TIMEOUT:.0f}s:\n{service.log_tail()}"
        )

    def close(self) -> None:
        for service in reversed(self._started):
            _stop(service.proc)
        self._started.clear()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group we created: the server and its workers
        proc.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
