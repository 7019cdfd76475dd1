"""The whole exception tree. Each request-facing error carries its wire code (the `error` field of our JSON
answers) and its HTTP status: these classes are the one table from a refusal to its status, and
answers/table.py renders every answer of ours from them (`status_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "AnswerCode",
    "BadItemId",
    "BadTarget",
    "ConditionFailed",
    "ConfigError",
    "DenialCode",
    "EntityForbidden",
    "EntityNotFound",
    "InsufficientScope",
    "InvalidToken",
    "KeyNotFound",
    "MalformedBody",
    "MethodNotAllowed",
    "MissingToken",
    "NotCallersOwn",
    "PayloadTooLarge",
    "Problem",
    "ProxiedPortOnly",
    "RateLimitBackendError",
    "RateLimitUnavailable",
    "RateLimited",
    "RequestRejected",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamTlsError",
    "UpstreamUnavailable",
    "status_of",
]

# The `error` of a denial the gate decides (Decision.error).
DenialCode: TypeAlias = Literal[
    "bad_request",
    "missing_token",
    "invalid_token",
    "insufficient_scope",
    "condition_failed",  # a rule's `when` condition is not true for this request
    "rate_limited",  # the gate's rate-limit step (authproxy.limits.check)
    "rate_limit_unavailable",
    # the stages after the gate (policy/stages.py): what the request's body or named entity holds
    "forbidden",
    "not_found",
    "payload_too_large",
    "method_not_allowed",
    # the decision port: an allow whose stage reads the body, the answer or each message
    "proxied_port_only",
]
# Every `error` an answer of our own may carry.
AnswerCode: TypeAlias = (
    DenialCode | Literal["upstream_unavailable", "upstream_timeout", "upstream_tls_failed", "internal_error"]
)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One located configuration problem, printed as ``FILE:LINE: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        # Line 0: no line to point at (a command-line value such as --listen, an unreadable file).
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ConfigError(Exception):
    """A configuration that failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RequestRejected(Exception):
    """A request the proxy answers itself, without reaching the upstream.

    A stage whose protocol has its own error shape gives the answer's `body` (an MCP refusal is a JSON-RPC
    error object) and any `headers` it needs (`Allow`); the status, `error` and challenge stay the table's.
    """

    code: ClassVar[DenialCode] = "bad_request"
    status: ClassVar[int] = 400

    def __init__(
        self, reason: str, *, body: object = None, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.reason = reason
        self.body = body
        self.headers = headers
        super().__init__(reason)


class BadTarget(RequestRejected):
    """The request target's meaning is ambiguous (dot-segments, encoded slash, non-origin form…)."""


class BadItemId(RequestRejected):
    """An id the caller names in a body or a tool argument cannot stand in a scope (a ':', whitespace or a
    control character): it would split or widen the scope, or break the challenge header that names it."""


class MalformedBody(RequestRejected):
    """A body, query or answer a rule reads that its strict reader cannot read with certainty."""


class PayloadTooLarge(RequestRejected):
    """A body a rule reads is over the rule's bound."""

    code: ClassVar[DenialCode] = "payload_too_large"
    status: ClassVar[int] = 413


class MethodNotAllowed(RequestRejected):
    """A method the route's checks cannot serve (HEAD on a response-checked route, PUT on an MCP endpoint)."""

    code: ClassVar[DenialCode] = "method_not_allowed"
    status: ClassVar[int] = 405


class MissingToken(RequestRejected):
    """No token in any configured source on a route that needs one."""

    code: ClassVar[DenialCode] = "missing_token"
    status: ClassVar[int] = 401


class InvalidToken(RequestRejected):
    """A token was presented but cannot be trusted (signature, format, time, aud/iss, alg, ambiguity), or
    its identity cannot be carried to the upstream (a control character in a claim, whitespace in a scope)."""

    code: ClassVar[DenialCode] = "invalid_token"
    status: ClassVar[int] = 401


class KeyNotFound(InvalidToken):
    """No key matches the token's ``kid``; a remote key source may refresh once and retry."""

    def __init__(self, reason: str, kid: str | None) -> None:
        super().__init__(reason)
        self.kid = kid


class InsufficientScope(RequestRejected):
    """A valid token whose scopes fall short of what the route requires."""

    code: ClassVar[DenialCode] = "insufficient_scope"
    status: ClassVar[int] = 403

    def __init__(
        self, reason: str, required: tuple[str, ...], missing: tuple[str, ...], *, body: object = None
    ) -> None:
        super().__init__(reason, body=body)
        self.required = required
        self.missing = missing


class ConditionFailed(RequestRejected):
    """A rule's `when` condition was false, failed to evaluate, or was not a boolean; never an allow.

    `condition` names the expression and where it is written, for the access line and `explain` only: the
    answer's body says no more than `reason` (a policy's internals are not told to callers).
    """

    code: ClassVar[DenialCode] = "condition_failed"
    status: ClassVar[int] = 403

    def __init__(self, reason: str, condition: str, value: str, *, body: object = None) -> None:
        super().__init__(reason, body=body)
        self.condition = condition
        self.value = value


class UpstreamError(Exception):
    """The upstream could not be used; raised only by proxy/forward.py before the response started."""

    code: ClassVar[AnswerCode] = "upstream_unavailable"
    status: ClassVar[int] = 502

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset before the response headers arrived."""


class UpstreamTimeout(UpstreamError):
    """Connect or read timed out before the response headers arrived."""

    code: ClassVar[AnswerCode] = "upstream_timeout"
    status: ClassVar[int] = 504


class RateLimitBackendError(Exception):
    """The shared rate-limit store (Redis) failed or timed out; `rate_limits.redis.on_error` decides."""


class NotCallersOwn(RequestRejected):
    """A pinned field names someone other than the caller (or the token carries no id to pin to)."""

    code: ClassVar[DenialCode] = "forbidden"
    status: ClassVar[int] = 403


class EntityNotFound(RequestRejected):
    """The entity a request names is not the caller's: answered as the upstream would answer a missing one."""

    code: ClassVar[DenialCode] = "not_found"
    status: ClassVar[int] = 404


class EntityForbidden(EntityNotFound):
    """As EntityNotFound, for an owner lookup configured to answer 403 (`owner.status: 403`)."""

    code: ClassVar[DenialCode] = "forbidden"
    status: ClassVar[int] = 403


class RateLimited(RequestRejected):
    code: ClassVar[DenialCode] = "rate_limited"
    status: ClassVar[int] = 429


class RateLimitUnavailable(RequestRejected):
    """The rate-limit store failed under `on_error: deny`: the store failed, not the caller."""

    code: ClassVar[DenialCode] = "rate_limit_unavailable"
    status: ClassVar[int] = 503


class ProxiedPortOnly(RequestRejected):
    """The decision port's refusal of an allow whose stage reads past the request line."""

    code: ClassVar[DenialCode] = "proxied_port_only"
    status: ClassVar[int] = 403


class UpstreamTlsError(UpstreamUnavailable):
    """The TLS handshake with the upstream failed: its certificate was refused, or it refused ours."""

    code: ClassVar[AnswerCode] = "upstream_tls_failed"


class _InternalError(Exception):
    """Only a row of the table: the last-resort 500 of the one outer boundary."""

    code: ClassVar[AnswerCode] = "internal_error"
    status: ClassVar[int] = 500


def _table() -> dict[str, int]:
    found: dict[str, int] = {}
    pending: list[type[BaseException]] = [RequestRejected, UpstreamError, _InternalError]
    while pending:
        cls = pending.pop()
        code, status = getattr(cls, "code", None), getattr(cls, "status", None)
        if isinstance(code, str) and isinstance(status, int) and found.setdefault(code, status) != status:
            raise TypeError(f"error code {code!r} is given two statuses")
        pending.extend(cls.__subclasses__())
    return found


_STATUS = _table()


def status_of(code: AnswerCode) -> int:
    """The HTTP status of an `error` code, as the error classes above carry it."""
    return _STATUS[code]
