"""The whole exception tree. Nothing here knows about HTTP: proxy/responses.py maps these to wire answers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BadTarget",
    "ConfigError",
    "HeaderTooLarge",
    "InsufficientScope",
    "InvalidToken",
    "KeyNotFound",
    "MissingToken",
    "Problem",
    "RequestRejected",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamTlsError",
    "UpstreamUnavailable",
]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One located configuration problem, printed as ``FILE:LINE: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    """A configuration that failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RequestRejected(Exception):
    """A request the proxy answers itself, without reaching the upstream."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadTarget(RequestRejected):
    """The request target's meaning is ambiguous (dot-segments, encoded slash, non-origin form…)."""


class HeaderTooLarge(RequestRejected):
    """A request header or the header block exceeds the configured limit."""


class MissingToken(RequestRejected):
    """No token in any configured source on a route that needs one."""


class InvalidToken(RequestRejected):
    """A token was presented but cannot be trusted (signature, format, time, aud/iss, alg, ambiguity)."""


class KeyNotFound(InvalidToken):
    """No key matches the token's ``kid``; a remote key source may refresh once and retry."""

    def __init__(self, reason: str, kid: str | None) -> None:
        super().__init__(reason)
        self.kid = kid


class InsufficientScope(RequestRejected):
    """A valid token whose scopes fall short of what the route requires."""

    def __init__(self, reason: str, required: tuple[str, ...], missing: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.required = required
        self.missing = missing


class UpstreamError(Exception):
    """The upstream could not be used; raised only by proxy/forward.py before the response started."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset before the response headers arrived."""


class UpstreamTimeout(UpstreamError):
    """Connect or read timed out before the response headers arrived."""


class UpstreamTlsError(UpstreamUnavailable):
    """The TLS handshake with the upstream failed: its certificate was refused, or it refused ours."""
