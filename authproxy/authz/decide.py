"""One check, whichever protocol carried it: the gate, the answer, the access line and the observers.

It reads the same RuntimeHolder as the proxied port (a reload applies to both at once) and reports each check
as an AccessRecord of the original request to the same observers (metrics) and access log, so a decision
looks alike whichever port made it; the log line adds which front end asked (`authz`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.authz.answer import CheckAnswer, check_answer
from authproxy.gate import authorize
from authproxy.logs import access_logger
from authproxy.proxy.server import AccessRecord, Observer
from authproxy.runtime import Runtime, RuntimeHolder

__all__ = ["Decider"]


class Decider:
    def __init__(self, holder: RuntimeHolder, observers: Iterable[Observer] = ()) -> None:
        self.holder = holder
        self._observers = tuple(observers)
        self._log = access_logger()

    async def decide(
        self,
        rt: Runtime,
        record: AccessRecord,
        method: str,
        target: str,
        headers: CIMultiDictProxy[str] | CIMultiDict[str],
        *,
        peer: str | None,
    ) -> CheckAnswer:
        """The answer to "may `method target` with `headers` pass?", noted in `record`.

        `peer`: the address the front end saw the client at (the check request's own peer on the HTTP port,
        the CheckRequest's source on gRPC), for rate limits keyed by client_ip."""
        record.method, record.path = method, target.partition("?")[0]
        started = time.perf_counter()
        # consume: in front of a mesh this port is where requests pass, so it spends their rate limits
        decision = await authorize(rt, method, target, headers, consume=True, peer=peer)
        record.decision_ms = (time.perf_counter() - started) * 1000
        answer = check_answer(rt, decision)
        record.decision, record.status = answer.decision, answer.rendered.status
        rate = rt.config.logging.allow_sample_rate
        # log detail sampling, not a security decision
        record.detail = not decision.allowed or rate >= 1.0 or random.random() < rate  # noqa: S311
        return answer

    def emit(self, record: AccessRecord, frontend: str) -> None:
        fields = record.fields()
        if record.status >= 500:
            self._log.warning("request", authz=frontend, **fields)
        else:
            self._log.info("request", authz=frontend, **fields)
        for observe in self._observers:
            observe(record)

    def failed(self, record: AccessRecord) -> None:
        record.outcome = "error"
        self._log.exception("unhandled error", method=record.method, path=record.path)
