"""One check, whichever protocol carried it: the gate and the answer, in the skeleton every port shares.

It reads the same RuntimeHolder as the proxied port (a reload applies to both at once) and reports each check
as an AccessRecord of the original request to the same observers (metrics) and access log, through the same
FrontEnd (proxy/frontend.py) as the proxied port, so a decision is logged, sampled and counted alike whichever
port made it; the log line adds which front end asked (`authz`).
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.authz.answer import CheckAnswer, check_answer, dry_run_answer
from authproxy.proxy.frontend import AccessRecord, FrontEnd, Observer
from authproxy.proxy.trial import dry_run_passes
from authproxy.runtime import Runtime, RuntimeHolder

__all__ = ["Decider"]


class Decider:
    """Shared by the HTTP and gRPC decision ports: `frontend` runs each check, `decide` answers it."""

    def __init__(self, holder: RuntimeHolder, observers: Iterable[Observer] = ()) -> None:
        self.frontend = FrontEnd(holder, observers)

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
        decision = await self.frontend.decide(rt, record, method, target, headers, peer=peer)
        # Dry run widens this port only when asked here too: a front end may act on our 200 alone.
        if dry_run_passes(rt.config.policy.dry_run and rt.config.authz.dry_run, decision):
            record.would = decision
            answer = dry_run_answer(rt, decision)
            record.status = answer.rendered.status
            return answer
        answer = check_answer(rt, decision)
        record.decision, record.status = answer.decision, answer.rendered.status
        return answer
