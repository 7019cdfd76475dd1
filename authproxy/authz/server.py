"""The decision port: each check request goes through the gate and is answered; nothing is ever forwarded.

It reads the same RuntimeHolder as the proxied port (a reload applies to both at once) and reports each check
as an AccessRecord of the original request to the same observers (metrics) and access log, so a decision
looks alike whichever port made it; the log line adds which front end asked (`authz`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable

from aiohttp import web
from multidict import CIMultiDict

from authproxy.authz.answer import check_answer
from authproxy.authz.original import BadCheck, UnknownEndpoint, original_request
from authproxy.config.model import Address
from authproxy.gate import authorize
from authproxy.logs import access_logger
from authproxy.proxy.protocol import HEAD_TIMEOUT, ProxyServer
from authproxy.proxy.responses import Rendered, render_error
from authproxy.proxy.server import AccessRecord, Observer
from authproxy.runtime import RuntimeHolder

__all__ = ["DecisionHandler", "DecisionListener"]

_BACKLOG = 1024


class DecisionHandler:
    """`handle(request)`: one runtime snapshot, the original request, the gate, the answer."""

    def __init__(self, holder: RuntimeHolder, observers: Iterable[Observer] = ()) -> None:
        self._holder = holder
        self._observers = tuple(observers)
        self._log = access_logger()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        record = AccessRecord(request.method, request.raw_path.partition("?")[0])
        frontend = "unknown"
        started = time.perf_counter()
        try:
            rt = self._holder.current  # read once: the whole check runs under this policy
            try:
                original = original_request(request, rt.config.authz.path_prefix)
            except BadCheck as bad:
                return self._answer(record, _refusal(bad))
            frontend = original.frontend
            record.method, record.path = original.method, original.target.partition("?")[0]
            decided = time.perf_counter()
            decision = await authorize(rt, original.method, original.target, request.headers)
            record.decision_ms = (time.perf_counter() - decided) * 1000
            record.decision, rendered = check_answer(rt, original.frontend, decision)
            rate = rt.config.logging.allow_sample_rate
            # log detail sampling, not a security decision
            record.detail = not decision.allowed or rate >= 1.0 or random.random() < rate  # noqa: S311
            return self._answer(record, rendered)
        except asyncio.CancelledError:
            record.outcome = "client_gone"
            raise
        except Exception:  # noqa: BLE001 - the outer boundary of the decision port: a bug answers 500
            record.outcome = "error"
            self._log.exception("unhandled error", method=record.method, path=record.path)
            return self._answer(record, render_error(500, "internal_error", "internal error"))
        finally:
            record.latency_ms = (time.perf_counter() - started) * 1000
            self._emit(record, frontend)

    @staticmethod
    def _answer(record: AccessRecord, rendered: Rendered) -> web.Response:
        record.status = rendered.status
        return web.Response(status=rendered.status, headers=CIMultiDict(rendered.headers), body=rendered.body)

    def _emit(self, record: AccessRecord, frontend: str) -> None:
        fields = record.fields()
        if record.status >= 500:
            self._log.warning("request", authz=frontend, **fields)
        else:
            self._log.info("request", authz=frontend, **fields)
        for observe in self._observers:
            observe(record)


def _refusal(bad: BadCheck) -> Rendered:
    if isinstance(bad, UnknownEndpoint):
        return render_error(404, "not_found", bad.reason)
    return render_error(400, "bad_request", bad.reason)


class DecisionListener:
    """The decision port's socket: `start()` binds (OSError when it cannot), `stop()` drains and closes."""

    def __init__(
        self,
        holder: RuntimeHolder,
        observers: Iterable[Observer] = (),
        *,
        grace: float,
        head_timeout: float = HEAD_TIMEOUT,
    ) -> None:
        self.handler = DecisionHandler(holder, observers)
        server = ProxyServer(
            self.handler, head_timeout=head_timeout, access_log=None, handler_cancellation=True
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=grace)
        self.address: tuple[str, int] = ("", 0)

    async def start(self, listen: Address, *, reuse_port: bool = False) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, listen.host, listen.port, backlog=_BACKLOG, reuse_port=reuse_port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.address = (str(host), int(port))

    async def stop(self) -> None:
        await self._runner.cleanup()
