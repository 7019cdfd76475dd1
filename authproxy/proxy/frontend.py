"""What every front end does around its own work: the proxied port, the HTTP decision port, the gRPC service.

Each request (or check) is one AccessRecord. `FrontEnd.serve` reads the runtime once, times the request,
notes a client that went away, holds the package's one broad `except` (a bug is answered as the port says,
never left hanging) and emits the record: one access line, then the observers (metrics). Sampling and levels
are the same on every port, because they are written only here:
- a denial's line always carries its detail; an allow's as `logging.allow_sample_rate` says, drawn when the
  line is written, so a stage that refuses after the gate is logged as the denial it became;
- WARNING when the answer is a 5xx or the upstream failed mid-answer, INFO otherwise.
Beside the access line, where a policy is being tried (proxy/trial.py): a `shadow` line when the shadow
policy decided otherwise, and a `divergence` line when the upstream's answer disagrees with our decision.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from multidict import CIMultiDict, CIMultiDictProxy

from authproxy.gate import authorize
from authproxy.logs import access_logger
from authproxy.policy.decision import Decision
from authproxy.proxy.trial import Compared, shadow_differs, upstream_divergence, verdict
from authproxy.runtime import Runtime, RuntimeHolder

__all__ = ["AccessRecord", "FrontEnd", "Observer"]

T = TypeVar("T")


@dataclass(slots=True)
class AccessRecord:
    """What the access line (and any observer, such as metrics) learns about one request."""

    method: str
    path: str  # the raw path without the query: a query may carry anything, and is never logged
    status: int = 0
    decision: Decision | None = None
    upstream_status: int | None = None
    outcome: str = "answered"  # answered | complete | upstream_failed | client_gone | error
    latency_ms: float = 0.0
    decision_ms: float = 0.0  # the authorization decision alone
    upstream_error: str | None = None  # unavailable | timeout, when no answer came from the upstream
    detail: bool = True  # log the decision detail: set by FrontEnd when the line is written
    client_cert: str | None = None  # the verified client certificate's subject (listener asks for one)
    authz: str | None = None  # which front end asked, on the decision ports (envoy, nginx, envoy_grpc, …)
    would: Decision | None = None  # dry run: the refusal we would have answered, the request passed instead
    shadow: Compared | None = None  # the shadow policy's gate decided otherwise
    divergence: tuple[str, str] | None = None  # (ours, upstream) where the upstream's answer disagrees

    def fields(self) -> dict[str, object]:
        d = self.decision
        out: dict[str, object] = {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "decision": "none" if d is None else ("allow" if d.allowed else "deny"),
            "reason": None if d is None else d.reason,
            "route": None if d is None else d.route,
            "subject": None if d is None else d.subject,
            "latency_ms": round(self.latency_ms, 3),
            "upstream_status": self.upstream_status,
            "outcome": self.outcome,
        }
        if self.authz is not None:
            out["authz"] = self.authz
        if self.client_cert is not None:
            out["client_cert"] = self.client_cert
        if d is not None and d.jti is not None and self.detail:
            out["jti"] = d.jti
        if d is not None and not d.allowed:
            out.update(error=d.error, required_scopes=d.required_scopes, missing_scopes=d.missing_scopes)
        elif d is not None and self.detail and d.required_scopes:
            out["required_scopes"] = d.required_scopes
        if d is not None and d.rate_limit is not None:
            out.update(d.rate_limit.log_fields())
        if (would := self.would) is not None:
            out.update(dry_run=True, would={"status": verdict(would), "error": would.error})
        refused = would if would is not None else d
        if refused is not None and refused.error == "condition_failed" and refused.condition is not None:
            # The operator learns which `when` refused, and what it gave; the caller's answer does not.
            out.update(condition=refused.condition.condition, condition_value=refused.condition.value)
        return out


Observer = Callable[[AccessRecord], None]


def _sampled(rate: float) -> bool:
    # Sampling log detail, not a security decision: a fast non-cryptographic draw is right.
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311


class FrontEnd:
    """The skeleton one port runs each request in; `holder` is the runtime every port of the process reads."""

    def __init__(self, holder: RuntimeHolder, observers: Iterable[Observer] = ()) -> None:
        self.holder = holder
        self._observers = tuple(observers)
        self._log = access_logger()

    async def serve(
        self, record: AccessRecord, handle: Callable[[Runtime], Awaitable[T]], fail: Callable[[], T]
    ) -> T:
        """`handle(rt)`'s answer, noted in `record`; `fail()` answers when `handle` has a bug (it sets the
        record's status: a port knows how it can still answer)."""
        rt = self.holder.current  # read once: the whole request runs under this policy
        started = time.perf_counter()
        try:
            return await handle(rt)
        except asyncio.CancelledError:
            record.outcome = "client_gone"  # the client disconnected, or shutdown's grace ran out
            raise
        except Exception:  # noqa: BLE001 - the one outer boundary: a bug answers 500 or aborts, never hangs
            record.outcome = "error"
            self._log.exception("unhandled error", method=record.method, path=record.path)
            return fail()
        finally:
            record.latency_ms = (time.perf_counter() - started) * 1000
            self.emit(record, rt.config.logging.allow_sample_rate)

    @staticmethod
    async def decide(
        rt: Runtime,
        record: AccessRecord,
        method: str,
        target: str,
        headers: CIMultiDictProxy[str] | CIMultiDict[str],
        *,
        peer: str | None,
    ) -> Decision:
        """The gate's decision on `method target`, noted in `record` with the time it took. `peer`: the
        client's address as the port saw it, for rate limits keyed by client_ip."""
        started = time.perf_counter()
        # consume: every port is where requests pass (in front of a mesh, the decision port), so each spends
        # their rate limits
        decision = record.decision = await authorize(rt, method, target, headers, consume=True, peer=peer)
        record.decision_ms = (time.perf_counter() - started) * 1000
        if rt.shadow is not None:  # after the timing: the enforced decision's cost is what is measured
            shadow = await authorize(rt.shadow, method, target, headers, consume=False, peer=peer)
            record.shadow = shadow_differs(decision, shadow)
        return decision

    def emit(self, record: AccessRecord, allow_sample_rate: float) -> None:
        decision = record.decision
        record.detail = decision is None or not decision.allowed or _sampled(allow_sample_rate)
        failed = record.status >= 500 or record.outcome == "upstream_failed"
        level = logging.WARNING if failed else logging.INFO
        if self._log.is_enabled_for(level):  # with the access line off, its fields are never built
            self._log.log(level, "request", **record.fields())
        self._trial_lines(record)
        for observe in self._observers:
            observe(record)

    def _trial_lines(self, record: AccessRecord) -> None:
        """The `shadow` and `divergence` lines: always written (they are what trying a policy is for)."""
        if record.shadow is not None:
            self._log.info("shadow", method=record.method, path=record.path, **record.shadow.fields())
        record.divergence = upstream_divergence(record.decision, record.would, record.upstream_status)
        if record.divergence is not None and record.decision is not None:
            where = {"method": record.method, "path": record.path}
            ours, upstream = record.divergence
            d = record.would or record.decision
            self._log.warning(
                "divergence",
                **where,
                route=d.route,
                subject=d.subject,
                ours=ours,
                error=d.error,
                upstream=upstream,
                dry_run=record.would is not None,
            )
