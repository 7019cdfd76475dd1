"""The whole exception tree. Each request-facing error names its wire code (the `error` field of our JSON
answers); nothing here knows about HTTP statuses: proxy/responses.py maps codes to wire answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

__all__ = [
    "AnswerCode",
    "BadItemId",
    "BadTarget",
    "ConfigError",
    "DenialCode",
    "HeaderTooLarge",
    "InsufficientScope",
    "InvalidToken",
    "KeyNotFound",
    "MissingToken",
    "Problem",
    "RateLimitBackendError",
    "RequestRejected",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamTlsError",
    "UpstreamUnavailable",
]

# The `error` of a denial the gate decides (Decision.error).
DenialCode: TypeAlias = Literal[
    "bad_request",
    "missing_token",
    "invalid_token",
    "insufficient_scope",
    "rate_limited",  # the gate's rate-limit step (authproxy.limits.check)
    "rate_limit_unavailable",
    # the content step (policy/content, proxy/content): what the request's body or named entity holds
    "forbidden",
    "not_found",
    "payload_too_large",
    "method_not_allowed",
]
# Every `error` an answer of our own may carry.
AnswerCode: TypeAlias = (
    DenialCode
    | Literal["upstream_unavailable", "upstream_timeout", "upstream_tls_failed", "internal_error"]
    # the decision port: an allow whose checks read the body, the answer or each message
    | Literal["proxied_port_only"]
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
    """A request the proxy answers itself, without reaching the upstream."""

    code: ClassVar[DenialCode] = "bad_request"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadTarget(RequestRejected):
    """The request target's meaning is ambiguous (dot-segments, encoded slash, non-origin form…)."""


class BadItemId(RequestRejected):
    """An id the caller names in a body or a tool argument cannot stand in a scope (a ':', whitespace or a
    control character): it would split or widen the scope, or break the challenge header that names it."""


class HeaderTooLarge(RequestRejected):
    """A request header or the header block exceeds the configured limit."""


class MissingToken(RequestRejected):
    """No token in any configured source on a route that needs one."""

    code: ClassVar[DenialCode] = "missing_token"


class InvalidToken(RequestRejected):
    """A token was presented but cannot be trusted (signature, format, time, aud/iss, alg, ambiguity), or
    its identity cannot be carried to the upstream (a control character in a claim, whitespace in a scope)."""

    code: ClassVar[DenialCode] = "invalid_token"


class KeyNotFound(InvalidToken):
    """No key matches the token's ``kid``; a remote key source may refresh once and retry."""

    def __init__(self, reason: str, kid: str | None) -> None:
        super().__init__(reason)
        self.kid = kid


class InsufficientScope(RequestRejected):
    """A valid token whose scopes fall short of what the route requires."""

    code: ClassVar[DenialCode] = "insufficient_scope"

    def __init__(self, reason: str, required: tuple[str, ...], missing: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.required = required
        self.missing = missing


class UpstreamError(Exception):
    """The upstream could not be used; raised only by proxy/forward.py before the response started."""

    code: ClassVar[AnswerCode] = "upstream_unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset before the response headers arrived."""


class UpstreamTimeout(UpstreamError):
    """Connect or read timed out before the response headers arrived."""

    code: ClassVar[AnswerCode] = "upstream_timeout"


class RateLimitBackendError(Exception):
    """The shared rate-limit store (Redis) failed or timed out; `rate_limits.redis.on_error` decides."""


class ContentRejected(RequestRejected):
    """A content rule refused the request on what its query, body or looked-up entity holds.

    It carries its own status: an owner lookup answers as the upstream it stands in for would (404 or 403).
    """

    def __init__(self, status: int, code: DenialCode, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.answer_code = code  # varies by refusal, unlike the class-wide `code` of the other rejections


class UpstreamTlsError(UpstreamUnavailable):
    """The TLS handshake with the upstream failed: its certificate was refused, or it refused ours."""

    code: ClassVar[AnswerCode] = "upstream_tls_failed"
