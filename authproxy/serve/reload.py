"""Hot reload: the config file, its shadow policy and the key files it names are watched, and reloaded on
request (SIGHUP).

A change is a change of bytes: every poll hashes each watched file through its path, so a Kubernetes
ConfigMap or Secret update (the `..data` symlink swapped to a new directory) counts like an edit in place,
and a touch that changes nothing does not. A reload validates and compiles the whole file first; new
remote key sources must load before the swap and the ones no longer used are closed after it. Requests in
flight keep the Runtime they started with. Anything that fails leaves the running policy in place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authproxy.config.model import Config, JwksFile, PublicKeyFile, SecretKey
from authproxy.config.tls import tls_files
from authproxy.errors import ConfigError
from authproxy.logs import get_logger
from authproxy.runtime import Runtime, RuntimeHolder, load_runtime
from authproxy.serve.tls import tls_shape

if TYPE_CHECKING:
    from authproxy.auth.keys import RemoteKeys
    from authproxy.serve.metrics import Metrics

__all__ = ["ReloadOptions", "Reloader", "fingerprint", "watched_files"]

Fingerprint = dict[str, str | None]  # path -> sha256 of its bytes, None when it cannot be read


@dataclass(frozen=True, slots=True)
class ReloadOptions:
    listen: str | None = None  # command-line overrides: applied again on every reload
    upstream: str | None = None
    interval: float | None = None  # seconds between checks of the watched files; None: only on request
    key_timeout: float = 10.0  # how long new remote key sources may take to load a key set


def watched_files(config: Config) -> tuple[str, ...]:
    """The config file, its shadow policy and every key and certificate file it names, as paths the process
    can open."""
    paths = [config.path, *tls_files(config.tls, config.upstream.tls), *tls_files(config.authz.tls, None)]
    if config.policy.shadow is not None:
        paths.append(config.policy.shadow.file)
    for key in config.jwt.keys:
        if isinstance(key, SecretKey) and key.origin != "secret":
            paths.append(key.origin)
        elif isinstance(key, PublicKeyFile | JwksFile):
            paths.append(key.path)
    return tuple(dict.fromkeys(paths))


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:  # follows every symlink, so a swapped `..data` is read anew
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def fingerprint(paths: Iterable[str]) -> Fingerprint:
    """The content hash of each file (blocking I/O: run it in a thread)."""
    return {path: _digest(path) for path in paths}


def _restart_only(old: Config, new: Config) -> list[tuple[str, str, str]]:
    """(key, running value, configured value) for each changed setting a reload cannot apply."""
    pairs = [
        ("listen", str(old.listen), str(new.listen)),
        ("admin_listen", str(old.admin_listen), str(new.admin_listen)),
        ("authz_listen", str(old.authz.listen), str(new.authz.listen)),
        ("authz.grpc_listen", str(old.authz.grpc_listen), str(new.authz.grpc_listen)),
        ("tls", tls_shape(old.tls), tls_shape(new.tls)),
        ("authz.tls", tls_shape(old.authz.tls), tls_shape(new.authz.tls)),
        ("upstream.url", old.upstream.url, new.upstream.url),
        ("logging.level", old.logging.level, new.logging.level),
        ("logging.format", old.logging.format, new.logging.format),
    ]
    return [pair for pair in pairs if pair[1] != pair[2]]


def _keep_running_values(old: Config, new: Config) -> Config:
    return dataclasses.replace(
        new,
        listen=old.listen,
        admin_listen=old.admin_listen,
        authz=dataclasses.replace(
            new.authz,
            listen=old.authz.listen,
            grpc_listen=old.authz.grpc_listen,
            tls=new.authz.tls if tls_shape(new.authz.tls) == tls_shape(old.authz.tls) else old.authz.tls,
        ),
        tls=new.tls if tls_shape(new.tls) == tls_shape(old.tls) else old.tls,
        upstream=dataclasses.replace(new.upstream, url=old.upstream.url),
        logging=dataclasses.replace(new.logging, level=old.logging.level, format=old.logging.format),
    )


def _sources(runtime: Runtime) -> dict[int, RemoteKeys]:
    return {id(source): source for _, source in runtime.remotes}


class Reloader:
    """Swaps `holder.current` for a freshly loaded Runtime; one reload at a time."""

    def __init__(
        self, holder: RuntimeHolder, options: ReloadOptions = ReloadOptions(), metrics: Metrics | None = None
    ) -> None:
        self._holder = holder
        self._options = options
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._seen: Fingerprint = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._log = get_logger("authproxy.serve.reload")

    async def start(self) -> None:
        """Record what the running config was loaded from; start polling when an interval is set."""
        self._seen = await asyncio.to_thread(fingerprint, watched_files(self._holder.current.config))
        if self._options.interval is not None:
            self._spawn(self._watch(self._options.interval), "config-watch")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def request(self, trigger: str) -> None:
        """Schedule a reload now (for signal handlers, which cannot await)."""
        self._spawn(self.reload(trigger), f"reload ({trigger})")

    def _spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        # Only a bug ends a watch early; say so loudly, since reloads stop from here on.
        if not task.cancelled() and (error := task.exception()) is not None:
            self._log.error("reload task failed", task=task.get_name(), error=repr(error))

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = await asyncio.to_thread(fingerprint, watched_files(self._holder.current.config))
            if any(digest != self._seen.get(path, "") for path, digest in now.items()):
                await self.reload("file changed")

    async def reload(self, trigger: str) -> bool:
        """Load, validate, start new key sources, swap, close retired ones. False: the old policy stays."""
        async with self._lock:
            old = self._holder.current
            before = await asyncio.to_thread(fingerprint, watched_files(old.config))
            self._seen = before  # a refused file is not retried until it changes again (or SIGHUP)
            try:
                new = await asyncio.to_thread(self._load, old)
            except ConfigError as error:
                return self._refuse(trigger, [str(problem) for problem in error.problems])
            except (ValueError, OSError) as error:
                return self._refuse(trigger, [f"{old.config.path}: {error}"])
            running, wanted = _sources(old), _sources(new)
            unready = await self._start_keys(new, [s for key, s in wanted.items() if key not in running])
            if unready:
                return self._refuse(trigger, unready)
            self._holder.swap(new)
            await self._retire([s for key, s in running.items() if key not in wanted])
            if new.limits.store is not old.limits.store:
                await old.limits.close()
            after = await asyncio.to_thread(fingerprint, watched_files(new.config))
            # A file that changed while it was loaded keeps its older hash, so the next poll reloads it.
            self._seen = {**after, **{path: digest for path, digest in before.items() if path in after}}
            if self._metrics is not None:
                self._metrics.reloads.success()
            self._log.info(
                "config reloaded",
                trigger=trigger,
                generation=self._holder.generation,
                rules=new.table.rule_count,
                warnings=[str(warning) for warning in new.warnings],
            )
            return True

    def _load(self, old: Runtime) -> Runtime:
        opts = self._options
        new = load_runtime(old.config.path, listen=opts.listen, upstream=opts.upstream, reuse=old)
        changed = _restart_only(old.config, new.config)
        if not changed:
            return new
        for key, running, configured in changed:
            self._log.warning(
                "config change needs a restart; keeping the running value",
                key=key,
                running=running,
                configured=configured,
            )
        return dataclasses.replace(new, config=_keep_running_values(old.config, new.config))

    async def _start_keys(self, new: Runtime, fresh: list[RemoteKeys]) -> list[str]:
        """Start `new`'s key sources; the problems of fresh ones that loaded nothing in time (closed)."""
        try:
            await new.keys.start()  # sources shared with the running Runtime are already running
            loaded = await asyncio.gather(*(s.wait_ready(self._options.key_timeout) for s in fresh))
        except asyncio.CancelledError:  # shutdown during a reload: leave no fetcher running
            await asyncio.shield(asyncio.gather(*(source.close() for source in fresh)))
            raise
        if all(loaded):
            return []
        for source in fresh:
            await source.close()
        return [
            f"{new.config.path}: key source {getattr(s, 'url', '?')} loaded no keys within "
            f"{self._options.key_timeout:g}s ({getattr(s, 'last_error', None) or 'no answer'})"
            for s, ok in zip(fresh, loaded, strict=True)
            if not ok
        ]

    async def _retire(self, sources: list[RemoteKeys]) -> None:
        for source in sources:
            await source.close()
        if self._metrics is not None:
            self._metrics.retire_key_sources(sources)

    def _refuse(self, trigger: str, problems: list[str]) -> bool:
        if self._metrics is not None:
            self._metrics.reloads.failure()
        self._log.error(
            "config reload failed; the running policy stays",
            trigger=trigger,
            generation=self._holder.generation,
            problems=problems,
        )
        return False
